// What the model-running subcommands share: pick the backend from config, load the model with it.
#pragma once

#include <filesystem>
#include <memory>

#include "bitrun/backend.hpp"
#include "bitrun/config.hpp"
#include "bitrun/decoder.hpp"
#include "bitrun/model.hpp"
#include "bitrun/plugin_host.hpp"

namespace bitrun::cli {

struct Runtime {
  std::unique_ptr<PluginHost> host;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Model> model;
};

// The model file from config (`model`), or from `explicit_path` when given.
std::filesystem::path model_path(const Config& config, const std::string& explicit_path = "");

Runtime load_runtime(const Config& config, const std::filesystem::path& model_file);

// bitrun::make_decode_request (context size, sampling.*, end-of-generation tokens, model facts): the CLI's name
// for it.
DecodeRequest decode_request(const Config& config, const Model& model, std::vector<std::int32_t> prompt,
                             std::int64_t max_tokens);

}  // namespace bitrun::cli
