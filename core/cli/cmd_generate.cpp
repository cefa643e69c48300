// `bitrun generate`: continue a prompt with the configured decoder and sampling, streaming text to stdout as it is
// produced, with speed on stderr at the end. Runs the generation pipeline a served request runs
// (bitrun/generation.hpp).
#include <chrono>
#include <cstdio>
#include <iostream>

#include "bitrun/base/error.hpp"
#include "bitrun/engine/generation.hpp"
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
  GenerationPrompt prompt;
  prompt.text = cl.value("--prompt");
  const PreparedGeneration prepared = prepare_generation(cl.config, model, prompt, max_tokens);
  const DecodeRequest& request = prepared.request;
  LocalGenerator generator(rt, cl.config);
  Generation generation = generator.start(prepared);
  for (Piece piece; generation.next(piece, std::chrono::hours(1));) std::cout << piece.text << std::flush;
  if (generation.outcome() != Outcome::Finished) throw Error(generation.error());
  std::cout << std::endl;
  if (cl.has_flag("--ids")) {
    std::cerr << "ids:";
    for (auto id : generation.tokens()) std::cerr << ' ' << id;
    std::cerr << "\n";
  }
  // The first token comes with the prompt's forward; the rest are decode steps.
  const double prefill_s = generation.seconds_to_first_token();
  const double decode_s = generation.seconds() - prefill_s;
  const std::size_t generated = generation.tokens().size(), decoded = generated ? generated - 1 : 0;
  std::fprintf(stderr, "prompt %zu tokens in %.3f s (%.1f tok/s); generated %zu tokens, %.1f tok/s after the first\n",
               request.prompt.size(), prefill_s, prefill_s > 0 ? request.prompt.size() / prefill_s : 0.0, generated,
               decode_s > 0 ? decoded / decode_s : 0.0);
  // How many forwards it took: one per token for AR, fewer for block diffusion.
  const SequenceStats& stats = generation.stats();
  std::fprintf(stderr, "decoder %s: %lld forwards, %lld rows computed, %.2f tokens per forward\n",
               generator.decoder_name().c_str(), static_cast<long long>(stats.forwards),
               static_cast<long long>(stats.rows), stats.tokens_per_forward());
  return 0;
}

}  // namespace bitrun::cli
