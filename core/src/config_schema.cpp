// Every configuration key bitrun understands. Adding a key here makes it valid in YAML, settable as BITRUN_<KEY>
// and --set key=value, printed by `bitrun config --print` and written by `bitrun generate-config`.
#include <algorithm>

#include "bitrun/config.hpp"

namespace bitrun {
namespace {

using S = std::string;
using L = std::vector<std::string>;
using I = std::int64_t;

std::vector<ConfigKey> build_schema() {
  return {
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
      {"decoder.type", ConfigType::String, S{"ar"}, "default decoder plugin: ar (autoregressive) or diffusion", {},
       {}, {}},
      {"decoder.mode", ConfigType::String, S{"iterative"},
       "diffusion mode: greedy, iterative (threshold), adaptive (rising threshold), factor (Fast-dLLM) or eb "
       "(EB-Sampler)",
       {"greedy", "iterative", "adaptive", "factor", "eb"}, {}, {}},
      {"decoder.threshold", ConfigType::Float, 0.9, "diffusion confidence threshold in [0, 1]", {}, 0.0, 1.0},
      {"decoder.block_size", ConfigType::Int, I{0}, "diffusion block size; 0 = the model's (else 32)", {}, 0.0,
       4096.0},
      {"decoder.sub_block_size", ConfigType::Int, I{8}, "diffusion sub-block size", {}, 1.0, 4096.0},
      {"decoder.max_iterations_per_block", ConfigType::Int, I{32}, "diffusion iteration cap per block", {}, 1.0,
       4096.0},
      {"decoder.factor", ConfigType::Float, 1.0,
       "diffusion mode factor: unmask the n most confident with (n + 1)(1 - c_n) < factor", {}, 0.0, 100.0},
      {"decoder.gamma", ConfigType::Float, 0.1,
       "diffusion mode eb: entropy budget (nats) for the positions unmasked together", {}, 0.0, 100.0},
      {"decoder.sub_block_cache", ConfigType::Bool, false,
       "diffusion (block-causal): forward only the sub-block once its first token is known (Fast-dLLM DualCache)",
       {}, {}, {}},
      {"decoder.mask_token", ConfigType::Int, I{-1},
       "diffusion mask token id; -1 = the model's (tokenizer.ggml.mask_token_id, else the token |<MASK>|)", {},
       -1.0, 2147483647.0},
      {"decoder.attention", ConfigType::String, S{"auto"},
       "diffusion model contract: auto (the model's, else block-causal), block-causal (Fast-dLLM v2) or causal",
       {"auto", "block-causal", "causal"}, {}, {}},
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
      {"server.host", ConfigType::String, S{"127.0.0.1"}, "address to bind", {}, {}, {}},
      {"server.port", ConfigType::Int, I{8080}, "TCP port; 0 = any free port (the log says which)", {}, 0.0, 65535.0},
      {"server.http_threads", ConfigType::Int, I{0},
       "HTTP connection threads kept ready (a connection holds one while open); 0 = max_parallel + max_queue + 4, "
       "so every admitted request has one and a full queue still gets its 429; more start up to max_connections",
       {}, 0.0, 4096.0},
      {"server.max_connections", ConfigType::Int, I{1024},
       "connections served at once (each holds a thread, slow clients included); http_threads start, more are "
       "added as connections need them up to this, then new connections wait",
       {}, 1.0, 65536.0},
      {"server.api_keys", ConfigType::StringList, L{},
       "accepted API keys (Authorization: Bearer or X-Api-Key); empty = no authentication", {}, {}, {}},
      {"server.cors_origins", ConfigType::StringList, L{}, "origins allowed by CORS; [\"*\"] = any; empty = none",
       {}, {}, {}},
      {"server.max_body_bytes", ConfigType::Int, I{1048576}, "largest request body accepted (413 above)", {}, 1.0,
       1e10},
      {"server.max_parallel", ConfigType::Int, I{8}, "requests decoded concurrently (batched together)", {}, 1.0,
       4096.0},
      {"server.max_queue", ConfigType::Int, I{64}, "requests waiting beyond max_parallel before 429", {}, 0.0, 1e6},
      {"server.max_tokens_cap", ConfigType::Int, I{4096}, "upper bound on a request's max_tokens", {}, 1.0,
       1048576.0},
      {"server.request_timeout_s", ConfigType::Int, I{600}, "a request still running after this is cancelled", {},
       1.0, 1e7},
      {"server.shutdown_grace_s", ConfigType::Int, I{25},
       "on SIGTERM/SIGINT, requests in flight get this long to finish before they are cancelled (new ones get 503)",
       {}, 0.0, 3600.0},
      {"server.model_id", ConfigType::String, S{}, "model id shown in /v1/models; empty = the model file's name",
       {}, {}, {}},
  };
}

}  // namespace

const std::vector<ConfigKey>& config_schema() {
  static const std::vector<ConfigKey> schema = build_schema();
  return schema;
}

const ConfigKey* find_config_key(std::string_view path) {
  const auto& schema = config_schema();
  auto it = std::find_if(schema.begin(), schema.end(), [&](const ConfigKey& k) { return k.path == path; });
  return it == schema.end() ? nullptr : &*it;
}

}  // namespace bitrun
