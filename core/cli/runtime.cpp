#include "runtime.hpp"

#include <chrono>

#include "bitrun/error.hpp"
#include "bitrun/log.hpp"
#include "options.hpp"

namespace bitrun::cli {

std::filesystem::path model_path(const Config& config, const std::string& explicit_path) {
  std::string path = explicit_path.empty() ? config.get_string("model") : explicit_path;
  if (path.empty())
    throw ConfigError("no model given: pass --model FILE.gguf or set `model` in the config "
                      "(the built-in default model arrives with issue #8)");
  return path;
}

std::unique_ptr<PluginHost> open_plugins(const Config& config) {
  return std::make_unique<PluginHost>(PluginHost::search_path(config), effective_cpu(config));
}

void load_model(Runtime& rt, const Config& config, const std::filesystem::path& model_file) {
  BackendChoice choice = rt.host->choose_backend(config.get_string("backend"));
  rt.backend = rt.host->create_backend(choice, resolve_threads(config));
  logger("cli")->info("backend {} ({}), {} threads", choice.name, choice.reason, rt.backend->threads());
  auto start = std::chrono::steady_clock::now();
  rt.model = Model::load(model_file, *rt.backend);
  logger("cli")->info("model loaded in {:.2f} s",
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

Runtime load_runtime(const Config& config, const std::filesystem::path& model_file) {
  Runtime rt;
  rt.host = open_plugins(config);
  load_model(rt, config, model_file);
  return rt;
}

}  // namespace bitrun::cli
