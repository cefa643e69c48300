// `bitrun generate`: greedy continuation of a prompt, streamed to stdout as it is produced.
// (Sampling, stop strings and batching come with the engine and the AR decoder plugin, issue #5.)
#include <chrono>
#include <cstdio>
#include <iostream>

#include "bitrun/error.hpp"
#include "bitrun/kv_cache.hpp"
#include "bitrun/tokenizer.hpp"
#include "bitrun/transformer.hpp"
#include "commands.hpp"
#include "options.hpp"
#include "runtime.hpp"

namespace bitrun::cli {
namespace {

std::int32_t argmax(const float* logits, std::int64_t n) {
  std::int64_t best = 0;
  for (std::int64_t i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<std::int32_t>(best);
}

}  // namespace

int run_generate(const Args& args, char** envp) {
  CommandLine cl = parse_command_line(args, {"--ids"}, envp, {{"--prompt", "-p"}, {"--max-tokens", "-n"}});
  if (cl.help || !cl.positional.empty()) {
    std::cout << "usage: bitrun generate [-m MODEL.gguf] [-p PROMPT] [-n MAX_TOKENS] [--ids] [options]\n"
                 "Greedy continuation of PROMPT (default: just BOS), streamed to stdout. --ids also prints the\n"
                 "generated token ids on stderr. Stops at the model's end-of-generation token.\n\n"
              << common_options_help();
    return cl.help ? 0 : 2;
  }
  apply_logging(cl);
  const std::int64_t max_tokens = cl.int_value("--max-tokens", cl.config.get_int("generation.max_tokens"));
  if (max_tokens < 1) throw ConfigError("--max-tokens must be at least 1");

  Runtime rt = load_runtime(cl.config, model_path(cl.config));
  const Model& model = *rt.model;
  const Tokenizer& tok = model.tokenizer();
  std::vector<std::int32_t> prompt = tok.encode(cl.value("--prompt"), /*add_bos=*/true, /*parse_special=*/true);
  const std::int64_t n_ctx =
      cl.config.get_int("context_size") > 0 ? cl.config.get_int("context_size") : model.hparams().n_ctx_train;
  if (static_cast<std::int64_t>(prompt.size()) >= n_ctx)
    throw Error("prompt has " + std::to_string(prompt.size()) + " tokens; the context holds " + std::to_string(n_ctx));

  KvCache cache(model.hparams(), n_ctx);
  Transformer transformer(model);
  StreamingDecoder text(tok);
  std::vector<float> logits(static_cast<std::size_t>(model.hparams().n_vocab));
  std::vector<std::int32_t> generated;

  auto start = std::chrono::steady_clock::now();
  std::vector<ForwardRow> rows;
  for (std::size_t i = 0; i < prompt.size(); ++i)
    rows.push_back({prompt[i], static_cast<std::int32_t>(i), static_cast<std::int32_t>(i + 1), &cache});
  std::int32_t last_row = static_cast<std::int32_t>(rows.size() - 1);
  transformer.forward(rows, std::span<const std::int32_t>(&last_row, 1), logits.data());
  auto first = std::chrono::steady_clock::now();

  std::int32_t pos = static_cast<std::int32_t>(prompt.size());
  while (static_cast<std::int64_t>(generated.size()) < max_tokens) {
    std::int32_t next = argmax(logits.data(), model.hparams().n_vocab);
    if (tok.is_end_of_generation(next)) break;
    generated.push_back(next);
    std::cout << text.push(next) << std::flush;
    if (static_cast<std::int64_t>(generated.size()) == max_tokens || pos + 1 >= n_ctx) break;
    ForwardRow row{next, pos, pos + 1, &cache};
    std::int32_t zero = 0;
    transformer.forward(std::span<const ForwardRow>(&row, 1), std::span<const std::int32_t>(&zero, 1), logits.data());
    ++pos;
  }
  std::cout << text.flush() << std::endl;
  auto end = std::chrono::steady_clock::now();
  const double prefill_s = std::chrono::duration<double>(first - start).count();
  const double decode_s = std::chrono::duration<double>(end - first).count();
  if (cl.has_flag("--ids")) {
    std::cerr << "ids:";
    for (auto id : generated) std::cerr << ' ' << id;
    std::cerr << "\n";
  }
  std::fprintf(stderr, "prompt %zu tokens in %.3f s; generated %zu tokens in %.3f s (%.1f tok/s)\n", prompt.size(),
               prefill_s, generated.size(), decode_s, decode_s > 0 ? generated.size() / decode_s : 0.0);
  return 0;
}

}  // namespace bitrun::cli
