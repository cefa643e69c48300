// The core's configuration keys. Adding a key here makes it valid in YAML, settable as BITRUN_<KEY> and --set
// key=value, printed by `bitrun config --print` and written by `bitrun generate-config`. Plugins add their own
// keys (decoder settings, the server's) through their descriptors; decoder.type and frontend.type, which choose
// the plugin, are the core's.
#include "bitrun/config/config.hpp"

namespace bitrun {
namespace {

using S = std::string;
using L = std::vector<std::string>;
using I = std::int64_t;

// ConfigKey's first fields: the core's keys have no shorthand option (options.cpp lists those) and no owner.
struct CoreKey {
  std::string path;
  ConfigType type;
  ConfigValue default_value;
  std::string help;
  std::vector<std::string> choices;
  std::optional<double> min, max;
};

std::vector<ConfigKey> build_schema() {
  const CoreKey core_keys[] = {
      {"model", ConfigType::String, S{}, "GGUF model file; empty = the built-in default model", {}, {}, {}},
      {"backend", ConfigType::String, S{"auto"},
       "kernel backend: auto (best for this CPU), reference (scalar, built in) or a plugin name (avx512, avx2)", {},
       {}, {}},
      {"threads", ConfigType::Int, I{0}, "compute threads; 0 = one per logical CPU", {}, 0.0, 1024.0},
      {"threads_wait", ConfigType::String, S{"auto"},
       "how idle compute threads wait: spin (cores to ourselves), sleep (cores shared with other work) or auto "
       "(spin a while, then sleep); OMP_WAIT_POLICY in the environment wins",
       {"auto", "spin", "sleep"}, {}, {}},
      {"context_size", ConfigType::Int, I{0}, "context length in tokens; 0 = the model's own", {}, 0.0, 1048576.0},
      {"kv_cache.type", ConfigType::String, S{"f16"},
       "KV cache storage: f16 (IEEE half) or int8 (one absmax scale per position and KV head, about half the "
       "memory of f16)",
       {"f16", "int8"}, {}, {}},
      {"log.level", ConfigType::String, S{"info"}, "trace, debug, info, warn, error, critical or off",
       {"trace", "debug", "info", "warn", "error", "critical", "off"}, {}, {}},
      {"log.format", ConfigType::String, S{"text"},
       "text (human-readable lines) or json (one JSON object a line, and one line per HTTP request)",
       {"text", "json"}, {}, {}},
      {"plugins.dir", ConfigType::String, S{},
       "plugin directory searched first (then BITRUN_PLUGIN_PATH, then ../lib/bitrun/plugins next to the "
       "executable)", {}, {}, {}},
      {"cpu.disable", ConfigType::StringList, L{},
       "CPU features to treat as absent, e.g. [avx512f] to run the AVX2 backend on an AVX-512 machine", {}, {}, {}},
      {"decoder.type", ConfigType::String, S{"ar"},
       "default decoder plugin: ar (autoregressive), diffusion or another decoder plugin's name", {}, {}, {}},
      {"frontend.type", ConfigType::String, S{"http"}, "the frontend plugin `bitrun serve` runs", {}, {}, {}},
      {"generation.max_tokens", ConfigType::Int, I{256}, "tokens to generate when a request does not say", {}, 1.0,
       1048576.0},
      {"generation.stop", ConfigType::StringList, L{},
       "stop strings: generation ends before the first one, which is not shown", {}, {}, {}},
      {"chat.template", ConfigType::String, S{"auto"},
       "chat prompt format: auto (recognised from the model's tokenizer.chat_template), llama3, chatml or plain",
       {"auto", "llama3", "chatml", "plain"}, {}, {}},
      {"sampling.temperature", ConfigType::Float, 0.8, "0 = greedy", {}, 0.0, 100.0},
      {"sampling.top_k", ConfigType::Int, I{40}, "0 = off", {}, 0.0, 1e9},
      {"sampling.top_p", ConfigType::Float, 0.95, "1 = off", {}, 0.0, 1.0},
      {"sampling.min_p", ConfigType::Float, 0.05, "0 = off", {}, 0.0, 1.0},
      {"sampling.repeat_penalty", ConfigType::Float, 1.0, "1 = off", {}, 0.0, 100.0},
      {"sampling.presence_penalty", ConfigType::Float, 0.0, "0 = off", {}, -2.0, 2.0},
      {"sampling.frequency_penalty", ConfigType::Float, 0.0, "0 = off", {}, -2.0, 2.0},
      {"sampling.penalty_last_n", ConfigType::Int, I{64}, "tokens the penalties look back over", {}, 0.0, 1e9},
      {"sampling.seed", ConfigType::Int, I{-1}, "random seed; -1 = a new one per request", {}, -1.0, 1.8e19},
  };
  std::vector<ConfigKey> keys;
  for (const CoreKey& k : core_keys) {
    ConfigKey key;
    key.path = k.path, key.type = k.type, key.default_value = k.default_value, key.help = k.help;
    key.choices = k.choices, key.min = k.min, key.max = k.max;
    keys.push_back(std::move(key));
  }
  return keys;
}

}  // namespace

const std::shared_ptr<const ConfigSchema>& core_config_schema() {
  static const std::shared_ptr<const ConfigSchema> schema = std::make_shared<const ConfigSchema>(build_schema());
  return schema;
}

}  // namespace bitrun
