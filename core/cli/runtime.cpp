#include "runtime.hpp"

#include <chrono>
#include <string>
#include <vector>

#include "bitrun/error.hpp"
#include "bitrun/log.hpp"
#include "bitrun/sampler.hpp"
#include "bitrun/tokenizer.hpp"
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
  DecodeRequest request;
  request.prompt = std::move(prompt);
  request.max_tokens = static_cast<std::int32_t>(max_tokens);
  const std::int64_t ctx = config.get_int("context_size");
  request.context_size = static_cast<std::int32_t>(ctx > 0 ? ctx : model.hparams().n_ctx_train);
  request.sampling = sampling_params_from_config(config);
  request.end_tokens = model.tokenizer().end_of_generation_tokens();
  return request;
}

}  // namespace bitrun::cli
