#include "runtime.hpp"

#include <chrono>

#include "bitrun/decode_request.hpp"
#include "bitrun/error.hpp"
#include "bitrun/log.hpp"
#include "bitrun/tokenizer.hpp"
#include "options.hpp"

namespace bitrun::cli {

std::filesystem::path model_path(const Config& config, const std::string& explicit_path) {
  std::string path = explicit_path.empty() ? config.get_string("model") : explicit_path;
  if (path.empty())
    throw ConfigError("no model given: pass --model FILE.gguf or set `model` in the config "
                      "(the built-in default model arrives with issue #8)");
  return path;
}

Runtime load_runtime(const Config& config, const std::filesystem::path& model_file) {
  Runtime rt;
  rt.host = std::make_unique<PluginHost>(PluginHost::search_path(config), effective_cpu(config));
  BackendChoice choice = rt.host->choose_backend(config.get_string("backend"));
  rt.backend = rt.host->create_backend(choice, resolve_threads(config));
  logger("cli")->info("backend {} ({}), {} threads", choice.name, choice.reason, rt.backend->threads());
  auto start = std::chrono::steady_clock::now();
  rt.model = Model::load(model_file, *rt.backend);
  logger("cli")->info("model loaded in {:.2f} s",
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return rt;
}

DecodeRequest decode_request(const Config& config, const Model& model, std::vector<std::int32_t> prompt,
                             std::int64_t max_tokens) {
  return make_decode_request(config, model, std::move(prompt), max_tokens);
}

}  // namespace bitrun::cli
