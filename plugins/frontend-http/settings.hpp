// The server.* settings: the configuration keys this plugin adds (setting_table(), listed in its descriptor), read
// once from config with the core's generation defaults a request falls back to.
#pragma once

#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "bitrun/plugin/plugin_abi.hpp"
#include "request_parser.hpp"

namespace bitrun {
class Config;
}

namespace bitrun::http {

struct ServerSettings {
  std::string model_id;                 // empty = the model file's name
  std::size_t max_parallel = 8;         // requests decoded together (the scheduler's slots)
  std::size_t max_queue = 64;           // requests waiting beyond those before 429
  std::string host;
  int port = 8080;
  std::size_t http_threads = 0;         // resolved (0 in config = max_parallel + max_queue + 4)
  std::size_t max_connections = 1024;   // the connection pool's ceiling (at least http_threads)
  std::size_t max_body_bytes = 0;
  std::chrono::seconds request_timeout{600};
  std::chrono::seconds shutdown_grace{25};   // stop(): how long requests in flight may still run
  std::chrono::seconds request_read_timeout{30};   // a request's head and body must arrive within this
  GenerationLimits limits;
  std::vector<std::string> api_keys;
  std::vector<std::string> cors_origins;
};

// The server.* keys: bounds, defaults and help, and --host / --port for `bitrun serve`.
std::span<const PluginSetting> setting_table();

ServerSettings read_settings(const Config& config);

}  // namespace bitrun::http
