#include "runtime.hpp"

#include <chrono>
#include <string>
#include <vector>

#include "bitrun/base/error.hpp"
#include "bitrun/model/kv_cache.hpp"
#include "bitrun/base/log.hpp"
#include "bitrun/base/thread_wait.hpp"
#include "options.hpp"

namespace bitrun::cli {

namespace {

// Where the built-in default model may be, in order: next to the executable as installed and as built (the build
// tree mirrors the install tree: bin/ and share/bitrun/models/), then the source tree it was built from.
std::vector<std::filesystem::path> default_model_candidates() {
  std::vector<std::filesystem::path> paths;
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) paths.push_back((exe.parent_path() / BITRUN_DATA_RELDIR / "models" / kDefaultModelFile).lexically_normal());
  paths.push_back(std::filesystem::path(BITRUN_SOURCE_MODELS_DIR) / kDefaultModelFile);
  return paths;
}

}  // namespace

std::filesystem::path default_model_path() {
  std::string looked;
  for (const auto& path : default_model_candidates()) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(path, ec)) return path;
    looked += (looked.empty() ? "" : ", ") + path.string();
  }
  throw ConfigError("no model given and the built-in default model is missing (looked for " + looked +
                    "): pass --model FILE.gguf or set `model` in the config");
}

std::filesystem::path model_path(const Config& config, const std::string& explicit_path) {
  std::string path = explicit_path.empty() ? config.get_string("model") : explicit_path;
  if (path.empty()) return default_model_path();
  return path;
}

std::unique_ptr<PluginHost> open_plugins(const Config& config) {
  // Before any backend plugin loads libgomp, which reads its wait policy once.
  const ThreadWaitOutcome wait = apply_thread_wait(parse_thread_wait(config.get_string("threads_wait")));
  logger("cli")->debug("threads_wait {}: {}", config.get_string("threads_wait"), wait.reason);
  return std::make_unique<PluginHost>(PluginHost::search_path(config), effective_cpu(config));
}

void load_model(Runtime& rt, const Config& config, const std::filesystem::path& model_file) {
  BackendChoice choice = rt.host->choose_backend(config.get_string("backend"));
  rt.backend = rt.host->create_backend(choice, resolve_threads(config));
  logger("cli")->info("backend {} ({}), {} threads", choice.name, choice.reason, rt.backend->threads());
  auto start = std::chrono::steady_clock::now();
  rt.model = Model::load(model_file, *rt.backend);
  const KvCacheType kv_cache = kv_cache_type_from_config(config);
  logger("cli")->info("model loaded in {:.2f} s; KV cache {} ({} bytes per position)",
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
                      kv_cache_type_name(kv_cache), KvCache(*rt.model, 1, kv_cache).bytes_per_position());
}

namespace {

SchedulerOptions local_scheduler_options(const Config& config) {
  SchedulerOptions options = SchedulerOptions::single_client_in_caller_thread();
  options.kv_cache = kv_cache_type_from_config(config);
  return options;
}

}  // namespace

LocalGenerator::LocalGenerator(const Runtime& rt, const Config& config)
    : model_(*rt.model), decoders_(*rt.host, config, config.get_string("decoder.type")),
      scheduler_(*rt.model, local_scheduler_options(config)) {}

Generation LocalGenerator::start(const PreparedGeneration& prepared, GenerationWatch watch) {
  const DecodeRequest& request = prepared.request;
  return Generation(scheduler_.submit(decoders_.start("", request), request.context_size, request.prompt.size()),
                    model_.tokenizer(), prepared.stops, prepared.continuation, std::move(watch));
}

void throw_if_failed(const Engine& engine, Engine::SequenceId id) {
  if (engine.finish_reason(id) == FinishReason::Error) throw Error(engine.error(id));
}

Runtime load_runtime(const PluginHost& host, const Config& config, const std::filesystem::path& model_file) {
  Runtime rt;
  rt.host = &host;
  load_model(rt, config, model_file);
  return rt;
}

}  // namespace bitrun::cli
