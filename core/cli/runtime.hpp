// What the model-running subcommands share: pick the backend from config, load the model with it.
#pragma once

#include <filesystem>
#include <memory>

#include "bitrun/plugin/backend.hpp"
#include "bitrun/config/config.hpp"
#include "bitrun/plugin/decoder.hpp"
#include "bitrun/engine/engine.hpp"
#include "bitrun/model/model.hpp"
#include "bitrun/plugin/plugin_host.hpp"
#include "bitrun/engine/decode_request.hpp"
#include "bitrun/engine/decoder_set.hpp"
#include "bitrun/engine/generation.hpp"
#include "bitrun/engine/scheduler.hpp"

namespace bitrun::cli {

struct Runtime {
  const PluginHost* host = nullptr;   // owned by the CommandLine (parse_command_line opens it)
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Model> model;
};

// The built-in default model's file name: models/ in the source tree, share/bitrun/models/ when built or installed.
inline constexpr const char* kDefaultModelFile = "default.gguf";

// The built-in default model (tools/train-default-model): share/bitrun/models/default.gguf relative to the
// executable (installed or build tree), else the source tree's models/. ConfigError naming where it looked when
// neither exists.
std::filesystem::path default_model_path();

// The model file from `explicit_path` when given, else from config (`model`), else the built-in default model.
std::filesystem::path model_path(const Config& config, const std::string& explicit_path = "");

// A Runtime on `host` with the model loaded (load_model).
Runtime load_runtime(const PluginHost& host, const Config& config, const std::filesystem::path& model_file);

// Opens the plugin host from config (plugins.dir, BITRUN_PLUGIN_PATH, next to the executable; cpu.disable;
// threads_wait, applied before any plugin loads OpenMP). parse_command_line calls it.
std::unique_ptr<PluginHost> open_plugins(const Config& config);
// Chooses the backend and loads the model into `rt` (whose host is set).
void load_model(Runtime& rt, const Config& config, const std::filesystem::path& model_file);

// `generate` and `chat`: one request at a time through the generation pipeline a served request runs (the
// decoder plugins of decoder.type, a scheduler with the config's KV cache type), its steps in this thread. The
// scheduler's engine keeps finished prompts' caches, so a chat turn computes only what it adds.
class LocalGenerator {
 public:
  LocalGenerator(const Runtime& rt, const Config& config);
  Generation start(const PreparedGeneration& prepared, GenerationWatch watch = {});
  const std::string& decoder_name() const { return decoders_.default_name(); }

 private:
  const Model& model_;
  DecoderSet decoders_;
  Scheduler scheduler_;
};

// The engine ends a sequence whose decoder failed with FinishReason::Error instead of throwing; a command that
// drives the engine calls this after the steps so it still exits with that message.
void throw_if_failed(const Engine& engine, Engine::SequenceId id);

// Requests are built with make_decode_request() (bitrun/decode_request.hpp), as the HTTP server builds them.

}  // namespace bitrun::cli
