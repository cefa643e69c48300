#include "diffusion_settings.hpp"

#include <algorithm>
#include <cmath>
#include <string_view>

#include "bitrun/config/config.hpp"
#include "bitrun/base/error.hpp"

namespace bitrun::diffusion {
namespace {

constexpr std::string_view kPrefix = "decoder.";

struct ModeName {
  Mode mode;
  const char* name;
};
constexpr ModeName kModes[] = {{Mode::Greedy, "greedy"},
                               {Mode::Iterative, "iterative"},
                               {Mode::Adaptive, "adaptive"},
                               {Mode::Factor, "factor"},
                               {Mode::EntropyBudget, "eb"}};

// "greedy|iterative|..." for the table's choices.
const std::string& mode_choices() {
  static const std::string choices = [] {
    std::string s;
    for (const auto& m : kModes) {
      if (!s.empty()) s += '|';
      s += m.name;
    }
    return s;
  }();
  return choices;
}

// The keys that describe how the model was trained, not how a request wants to be decoded.
bool describes_model(std::string_view leaf) { return leaf == "mask_token" || leaf == "attention"; }

template <typename T>
T as(const ConfigValue& v) {
  return std::get<T>(v);
}

// One setting into `s`, by its name without the prefix (the value already has the table's type and bounds).
void apply(Settings& s, std::string_view leaf, const ConfigValue& v) {
  if (leaf == "mode") {
    const std::string& name = as<std::string>(v);
    for (const auto& m : kModes)
      if (name == m.name) s.mode = m.mode;
  } else if (leaf == "threshold") {
    s.threshold = as<double>(v);
  } else if (leaf == "block_size") {
    s.block_size = static_cast<std::int32_t>(as<std::int64_t>(v));
  } else if (leaf == "sub_block_size") {
    s.sub_block_size = static_cast<std::int32_t>(as<std::int64_t>(v));
  } else if (leaf == "max_iterations_per_block") {
    s.max_iterations_per_block = static_cast<std::int32_t>(as<std::int64_t>(v));
  } else if (leaf == "factor") {
    s.factor = as<double>(v);
  } else if (leaf == "gamma") {
    s.gamma = as<double>(v);
  } else if (leaf == "sub_block_cache") {
    s.sub_block_cache = as<bool>(v);
  } else if (leaf == "mask_token") {
    s.mask_token = static_cast<std::int32_t>(as<std::int64_t>(v));
  } else if (leaf == "attention") {
    const std::string& a = as<std::string>(v);
    s.attention = a == "block-causal" ? DiffusionAttention::BlockCausal
                  : a == "causal"     ? DiffusionAttention::Causal
                                      : DiffusionAttention::Unspecified;
  } else {
    throw Error("internal: diffusion setting '" + std::string(leaf) + "' has no field");
  }
}

}  // namespace

const char* mode_name(Mode mode) {
  for (const auto& m : kModes)
    if (m.mode == mode) return m.name;
  return "?";
}

std::vector<std::string> mode_names() {
  std::vector<std::string> names;
  for (const auto& m : kModes) names.emplace_back(m.name);
  return names;
}

std::span<const PluginSetting> setting_table() {
  using T = ConfigType;
  constexpr double kNone = kUnbounded;
  static const PluginSetting table[] = {
      {"decoder.mode", T::String, "iterative",
       "diffusion mode: greedy, iterative (threshold), adaptive (rising threshold), factor (Fast-dLLM) or eb "
       "(EB-Sampler)",
       mode_choices().c_str(), kNone, kNone, nullptr, false},
      {"decoder.threshold", T::Float, "0.9", "diffusion confidence threshold in [0, 1]", nullptr, 0.0, 1.0, nullptr,
       false},
      {"decoder.block_size", T::Int, "0", "diffusion block size; 0 = the model's (else 32)", nullptr, 0.0, 4096.0,
       nullptr, false},
      {"decoder.sub_block_size", T::Int, "8", "diffusion sub-block size", nullptr, 1.0, 4096.0, nullptr, false},
      {"decoder.max_iterations_per_block", T::Int, "32", "diffusion iteration cap per block", nullptr, 1.0, 4096.0,
       nullptr, false},
      {"decoder.factor", T::Float, "1.0",
       "diffusion mode factor: unmask the n most confident with (n + 1)(1 - c_n) < factor", nullptr, 0.0, 100.0,
       nullptr, false},
      {"decoder.gamma", T::Float, "0.1", "diffusion mode eb: entropy budget (nats) for the positions unmasked together",
       nullptr, 0.0, 100.0, nullptr, false},
      {"decoder.sub_block_cache", T::Bool, "false",
       "diffusion (block-causal): forward only the sub-block once its first token is known (Fast-dLLM DualCache)",
       nullptr, kNone, kNone, nullptr, false},
      {"decoder.mask_token", T::Int, "-1",
       "diffusion mask token id; -1 = the model's (tokenizer.ggml.mask_token_id, else the token |<MASK>|)", nullptr,
       -1.0, 2147483647.0, nullptr, false},
      {"decoder.attention", T::String, "auto",
       "diffusion model contract: auto (the model's, else block-causal), block-causal (Fast-dLLM v2) or causal",
       "auto|block-causal|causal", kNone, kNone, nullptr, false},
  };
  return table;
}

Settings settings_from_config(const Config& config) {
  Settings s;
  for (const PluginSetting& setting : setting_table())
    apply(s, std::string_view(setting.path).substr(kPrefix.size()), config.value(setting.path));
  return s;
}

Settings with_request_options(Settings s, const std::map<std::string, std::string>& options) {
  for (const auto& [key, text] : options) {
    if (describes_model(key))
      throw ConfigError("decoder option '" + key + "' describes the model: set decoder." + key +
                        " in the configuration, not per request");
    const auto table = setting_table();
    const auto it = std::find_if(table.begin(), table.end(), [&](const PluginSetting& setting) {
      return std::string_view(setting.path).substr(kPrefix.size()) == key;
    });
    if (it == table.end()) {
      std::string known;
      for (const PluginSetting& setting : table) {
        const std::string_view leaf = std::string_view(setting.path).substr(kPrefix.size());
        if (!describes_model(leaf)) known += (known.empty() ? "" : ", ") + std::string(leaf);
      }
      throw ConfigError("decoder 'diffusion' has no option '" + key + "' (" + known + ")");
    }
    apply(s, key, parse_request_option(*it, key, text));
  }
  return s;
}

}  // namespace bitrun::diffusion
