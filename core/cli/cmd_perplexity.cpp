// `bitrun perplexity MODEL.gguf TEXT`: mean NLL and perplexity under the protocol in bitrun/perplexity.hpp.
#include <fstream>
#include <iostream>
#include <sstream>

#include "bitrun/base/error.hpp"
#include "bitrun/model/kv_cache.hpp"
#include "bitrun/model/perplexity.hpp"
#include "bitrun/model/transformer.hpp"
#include "commands.hpp"
#include "options.hpp"
#include "runtime.hpp"

namespace bitrun::cli {

int run_perplexity(const Args& args, char** envp) {
  CommandLine cl =
      parse_command_line(args, {}, envp, {{"--lines", ""}, {"--max-tokens", ""}, {"--logits-out", ""}});
  if (cl.help || cl.positional.empty() || cl.positional.size() > 2) {
    std::cout << "usage: bitrun perplexity [MODEL.gguf] TEXT_FILE [--lines N] [--max-tokens N] [--logits-out FILE]\n"
                 "                         [options]\n"
                 "Scores every non-empty line of TEXT_FILE (stripped) on its own as BOS + line, at most\n"
                 "--max-tokens tokens (default 512); --lines N takes only the first N non-empty lines.\n"
                 "Prints predicted tokens, mean negative log-likelihood per token and perplexity.\n"
                 "--logits-out FILE writes, per scored line, little-endian: int32 n, int32 ids[n] (BOS first),\n"
                 "float32 logits[n-1][n_vocab] (row i predicts ids[i+1]), to compare with another implementation.\n\n"
              << common_options_help();
    return cl.help ? 0 : 2;
  }
  apply_logging(cl);
  const std::string text_file = cl.positional.back();
  std::ifstream in(text_file);
  if (!in) throw Error(text_file + ": cannot open text file");
  std::stringstream text;
  text << in.rdbuf();
  const std::int64_t max_tokens = cl.int_value("--max-tokens", 512);
  if (max_tokens < 2) throw ConfigError("--max-tokens must be at least 2");

  Runtime rt = load_runtime(*cl.host, cl.config, model_path(cl.config, cl.positional.size() == 2 ? cl.positional[0] : ""));
  Transformer transformer(*rt.model);
  LineLogitsSink sink;
  std::ofstream dump;
  if (const std::string path = cl.value("--logits-out"); !path.empty()) {
    dump.open(path, std::ios::binary | std::ios::trunc);
    if (!dump) throw Error(path + ": cannot open for writing");
    sink = [&dump](std::span<const std::int32_t> ids, std::span<const float> logits) {
      const auto n = static_cast<std::int32_t>(ids.size());   // host order: little-endian on x86-64
      dump.write(reinterpret_cast<const char*>(&n), sizeof n);
      dump.write(reinterpret_cast<const char*>(ids.data()), static_cast<std::streamsize>(ids.size_bytes()));
      dump.write(reinterpret_cast<const char*>(logits.data()), static_cast<std::streamsize>(logits.size_bytes()));
    };
  }
  PerplexityResult r =
      score_lines(transformer, nonempty_lines(text.str(), cl.int_value("--lines", 0)), max_tokens, sink,
                  kv_cache_type_from_config(cl.config));
  if (dump.is_open() && !dump.flush()) throw Error(cl.value("--logits-out") + ": write failed");
  std::printf("lines %lld, predicted tokens %lld, mean NLL %.5f, perplexity %.4f\n",
              static_cast<long long>(r.lines), static_cast<long long>(r.tokens), r.mean_nll(), r.perplexity());
  return 0;
}

}  // namespace bitrun::cli
