// The diffusion decoder's settings: the `decoder.*` configuration keys this plugin adds (setting_table(), listed
// in its descriptor), overridden per request by DecodeRequest::decoder_options (the same names without the
// prefix, checked against the same table), validated with errors naming key and value.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "bitrun/model/diffusion_metadata.hpp"
#include "bitrun/plugin/plugin_abi.hpp"

namespace bitrun::diffusion {

enum class Mode {
  Greedy,          // one forward fills every masked position of the sub-block (argmax, or sampled)
  Iterative,       // unmask every position with confidence > threshold, and always the most confident one
  Adaptive,        // like iterative with threshold max(0.5, t-0.4), then max(0.7, t-0.2), then t per iteration
  Factor,          // Fast-dLLM's factor rule: the n most confident with (n + 1)(1 - c_n) < factor
  EntropyBudget,   // EB-Sampler: the k lowest-entropy positions with sum(H_1..k) - max(H_1..k) <= gamma
};

const char* mode_name(Mode mode);
// Every mode's name, in the order bench compares them (Decoder::modes()).
std::vector<std::string> mode_names();

struct Settings {
  Mode mode = Mode::Iterative;
  double threshold = 0.9;
  std::int32_t block_size = 0;               // 0 = the model's, else 32
  std::int32_t sub_block_size = 8;
  std::int32_t max_iterations_per_block = 32;
  double factor = 1.0;
  double gamma = 0.1;
  bool sub_block_cache = false;
  // Facts about the model the configuration may override (not per request): -1 / Unspecified = the model's.
  std::int32_t mask_token = -1;
  DiffusionAttention attention = DiffusionAttention::Unspecified;
};

// The decoder.* keys, with their defaults (those of Settings), bounds and help.
std::span<const PluginSetting> setting_table();

// From the decoder.* keys (already checked against the table by the configuration).
Settings settings_from_config(const Config& config);

// `base` with a request's options applied. ConfigError naming the option for an unknown key or a bad value.
Settings with_request_options(Settings base, const std::map<std::string, std::string>& options);

}  // namespace bitrun::diffusion
