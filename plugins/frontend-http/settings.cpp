#include "settings.hpp"

#include <algorithm>

#include "bitrun/config.hpp"

namespace bitrun::http {

// Slack threads beyond the admitted requests: /health, /metrics and 429 answers stay responsive when every
// decoding slot and queue place is taken.
constexpr std::size_t kSpareThreads = 4;

ServerSettings read_settings(const Config& c) {
  ServerSettings s;
  s.host = c.get_string("server.host");
  s.port = static_cast<int>(c.get_int("server.port"));
  const auto parallel = static_cast<std::size_t>(c.get_int("server.max_parallel"));
  const auto queue = static_cast<std::size_t>(c.get_int("server.max_queue"));
  const auto threads = c.get_int("server.http_threads");
  s.http_threads = threads > 0 ? static_cast<std::size_t>(threads) : parallel + queue + kSpareThreads;
  s.max_connections = std::max(s.http_threads, static_cast<std::size_t>(c.get_int("server.max_connections")));
  s.max_body_bytes = static_cast<std::size_t>(c.get_int("server.max_body_bytes"));
  s.request_timeout = std::chrono::seconds(c.get_int("server.request_timeout_s"));
  s.shutdown_grace = std::chrono::seconds(c.get_int("server.shutdown_grace_s"));
  s.limits.max_tokens_cap = c.get_int("server.max_tokens_cap");
  s.limits.default_max_tokens = c.get_int("generation.max_tokens");
  s.default_stop = c.get_string_list("generation.stop");
  s.api_keys = c.get_string_list("server.api_keys");
  s.cors_origins = c.get_string_list("server.cors_origins");
  return s;
}

}  // namespace bitrun::http
