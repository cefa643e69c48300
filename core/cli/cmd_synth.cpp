// `bitrun synth OUT.gguf --preset NAME`: write a synthetic model with real shapes and random ternary weights.
#include <chrono>
#include <cstdio>
#include <iostream>

#include "bitrun/base/error.hpp"
#include "bitrun/model/synthetic_model.hpp"
#include "commands.hpp"
#include "options.hpp"

namespace bitrun::cli {

int run_synth(const Args& args, char** envp) {
  CommandLine cl = parse_command_line(args, {"--quiet"}, envp,
                                      {{"--preset", ""}, {"--weight-type", ""}, {"--embedding-type", ""},
                                       {"--layers", ""}, {"--seed", ""}});
  if (cl.help || cl.positional.size() != 1) {
    std::string presets;
    for (const auto& n : synthetic_preset_names()) presets += " " + n;
    std::cout << "usage: bitrun synth OUT.gguf [--preset NAME] [--weight-type i2_s|tq2_0|tq1_0]\n"
                 "                    [--embedding-type f16|q8_0|q6_k|f32] [--layers N] [--seed N] [--quiet]\n"
                 "Writes a model with the preset's shapes and random ternary weights, for benchmarks.\n"
                 "Presets:" << presets << " (default bitnet-2b-4t: I2_S weights, F16 tied embedding).\n";
    return cl.help ? 0 : 2;
  }
  apply_logging(cl);
  SyntheticSpec spec = synthetic_preset(cl.value("--preset", "bitnet-2b-4t"));
  auto type_option = [&](const char* option, GgmlType fallback) {
    const std::string name = cl.value(option);
    if (name.empty()) return fallback;
    auto t = ggml_type_from_name(name);
    if (!t) throw ConfigError(std::string(option) + ": unknown type '" + name + "'");
    return *t;
  };
  spec.weight_type = type_option("--weight-type", spec.weight_type);
  spec.embedding_type = type_option("--embedding-type", spec.embedding_type);
  if (!type_traits(spec.weight_type).ternary) throw ConfigError("--weight-type must be i2_s, tq2_0 or tq1_0");
  if (type_traits(spec.embedding_type).ternary) throw ConfigError("--embedding-type cannot be ternary");
  spec.n_layer = cl.int_value("--layers", spec.n_layer);
  if (spec.n_layer < 1) throw ConfigError("--layers must be at least 1");
  const bool quiet = cl.has_flag("--quiet");
  const auto start = std::chrono::steady_clock::now();
  write_synthetic_model(spec, cl.positional[0], static_cast<std::uint64_t>(cl.int_value("--seed", 42)),
                        [quiet](std::size_t done, std::size_t total) {
                          if (!quiet) std::fprintf(stderr, "\rsynth: tensor %zu/%zu", done, total);
                        });
  std::fprintf(stderr, "%swrote %s (%s, %lld layers) in %.1f s\n", quiet ? "" : "\n", cl.positional[0].c_str(),
               spec.preset.c_str(), static_cast<long long>(spec.n_layer),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return 0;
}

}  // namespace bitrun::cli
