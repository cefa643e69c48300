// `bitrun generate`: continue a prompt with the configured decoder and sampling, streaming text to stdout as it is
// produced, with speed on stderr at the end. Runs through the engine like a served request.
#include <chrono>
#include <cstdio>
#include <iostream>

#include "bitrun/engine.hpp"
#include "bitrun/error.hpp"
#include "bitrun/stop_strings.hpp"
#include "bitrun/tokenizer.hpp"
#include "commands.hpp"
#include "options.hpp"
#include "runtime.hpp"

namespace bitrun::cli {

int run_generate(const Args& args, char** envp) {
  CommandLine cl = parse_command_line(args, {"--ids"}, envp, {{"--prompt", "-p"}, {"--max-tokens", "-n"}});
  if (cl.help || !cl.positional.empty()) {
    std::cout << "usage: bitrun generate [-m MODEL.gguf] [-p PROMPT] [-n MAX_TOKENS] [--ids] [options]\n"
                 "Continues PROMPT (default: just BOS) with the configured decoder (decoder.type) and sampling\n"
                 "(sampling.*; --set sampling.temperature=0 for greedy), streaming text to stdout, ending before\n"
                 "the first of generation.stop (e.g. --set 'generation.stop=[\"\\n\"]'). --ids also\n"
                 "prints the generated token ids on stderr. Stops at the model's end-of-generation tokens.\n"
                 "Block diffusion: --set decoder.type=diffusion --set decoder.mode=greedy|iterative|adaptive|factor|eb\n"
                 "(decoder.*; the model needs a mask token, or decoder.mask_token). Ends with the forwards, rows and\n"
                 "tokens per forward it took.\n\n"
              << common_options_help();
    return cl.help ? 0 : 2;
  }
  apply_logging(cl);
  const std::int64_t max_tokens = cl.int_value("--max-tokens", cl.config.get_int("generation.max_tokens"));
  if (max_tokens < 1) throw ConfigError("--max-tokens must be at least 1");

  Runtime rt = load_runtime(*cl.host, cl.config, model_path(cl.config));
  const Model& model = *rt.model;
  const Tokenizer& tok = model.tokenizer();
  DecodeRequest request = make_decode_request(cl.config, model,
                                         tok.encode(cl.value("--prompt"), /*add_bos=*/true, /*parse_special=*/true),
                                         max_tokens);
  if (request.prompt.empty()) throw Error("the prompt is empty and the model has no BOS token to start from");
  std::unique_ptr<Decoder> decoder = rt.host->create_decoder(cl.config.get_string("decoder.type"), cl.config);

  Engine engine(model);
  // The output continues the prompt's text: its first token keeps its leading space.
  TextStream text(tok, cl.config.get_string_list("generation.stop"), /*continuation=*/!tok.decode(request.prompt).empty());
  std::vector<std::int32_t> generated;
  const auto start = std::chrono::steady_clock::now();
  auto first = start;
  Engine::SequenceId id = 0;
  id = engine.add(decoder->start(request), request.context_size,
                  [&](Engine::SequenceId, const std::vector<std::int32_t>& t) {
                    if (generated.empty()) first = std::chrono::steady_clock::now();
                    for (std::int32_t token : t) {
                      if (text.stopped()) break;
                      generated.push_back(token);
                      std::cout << text.push(token) << std::flush;
                    }
                    if (text.stopped()) engine.cancel(id);   // the stop string ends the request
                  });
  while (engine.step()) {
  }
  throw_if_failed(engine, id);
  std::cout << text.finish() << std::endl;
  const auto end = std::chrono::steady_clock::now();
  if (cl.has_flag("--ids")) {
    std::cerr << "ids:";
    for (auto id : generated) std::cerr << ' ' << id;
    std::cerr << "\n";
  }
  // The first token comes with the prompt's forward; the rest are decode steps.
  const double prefill_s = std::chrono::duration<double>(first - start).count();
  const double decode_s = std::chrono::duration<double>(end - first).count();
  const std::size_t decoded = generated.empty() ? 0 : generated.size() - 1;
  std::fprintf(stderr, "prompt %zu tokens in %.3f s (%.1f tok/s); generated %zu tokens, %.1f tok/s after the first\n",
               request.prompt.size(), prefill_s, prefill_s > 0 ? request.prompt.size() / prefill_s : 0.0,
               generated.size(), decode_s > 0 ? decoded / decode_s : 0.0);
  // How many forwards it took: one per token for AR, fewer for block diffusion.
  const SequenceStats& stats = engine.stats(id);
  std::fprintf(stderr, "decoder %s: %lld forwards, %lld rows computed, %.2f tokens per forward\n",
               decoder->name().c_str(), static_cast<long long>(stats.forwards), static_cast<long long>(stats.rows),
               stats.tokens_per_forward());
  return 0;
}

}  // namespace bitrun::cli
