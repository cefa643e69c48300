#include "settings.hpp"

#include <algorithm>

#include "bitrun/config/config.hpp"

namespace bitrun::http {

// Slack threads beyond the admitted requests: /health, /metrics and 429 answers stay responsive when every
// decoding slot and queue place is taken.
constexpr std::size_t kSpareThreads = 4;

std::span<const PluginSetting> setting_table() {
  using T = ConfigType;
  constexpr double kNone = kUnbounded;
  static const PluginSetting table[] = {
      {"server.host", T::String, "127.0.0.1", "address to bind", nullptr, kNone, kNone, "--host", false},
      {"server.port", T::Int, "8080", "TCP port; 0 = any free port (the log says which)", nullptr, 0.0, 65535.0,
       "--port", false},
      {"server.http_threads", T::Int, "0",
       "HTTP connection threads kept ready (a connection holds one while open); 0 = max_parallel + max_queue + 4, "
       "so every admitted request has one and a full queue still gets its 429; more start up to max_connections",
       nullptr, 0.0, 4096.0, nullptr, false},
      {"server.max_connections", T::Int, "1024",
       "connections served at once (each holds a thread, slow clients included); http_threads start, more are "
       "added as connections need them up to this, then new connections wait",
       nullptr, 1.0, 65536.0, nullptr, false},
      {"server.api_keys", T::StringList, "[]",
       "accepted API keys (Authorization: Bearer or X-Api-Key); empty = no authentication", nullptr, kNone, kNone,
       nullptr, true},
      {"server.cors_origins", T::StringList, "[]", "origins allowed by CORS; [\"*\"] = any; empty = none", nullptr,
       kNone, kNone, nullptr, false},
      {"server.max_body_bytes", T::Int, "1048576", "largest request body accepted (413 above)", nullptr, 1.0, 1e10,
       nullptr, false},
      {"server.max_parallel", T::Int, "8", "requests decoded concurrently (batched together)", nullptr, 1.0, 4096.0,
       nullptr, false},
      {"server.max_queue", T::Int, "64", "requests waiting beyond max_parallel before 429", nullptr, 0.0, 1e6,
       nullptr, false},
      {"server.max_tokens_cap", T::Int, "4096", "upper bound on a request's max_tokens", nullptr, 1.0, 1048576.0,
       nullptr, false},
      {"server.request_timeout_s", T::Int, "600", "a request still running after this is cancelled", nullptr, 1.0,
       1e7, nullptr, false},
      {"server.request_read_timeout_s", T::Int, "30",
       "a connection whose request (head and body) has not arrived this long after it opened, or after its last "
       "response, is closed (slow clients)",
       nullptr, 1.0, 86400.0, nullptr, false},
      {"server.shutdown_grace_s", T::Int, "25",
       "on SIGTERM/SIGINT, requests in flight get this long to finish before they are cancelled (new ones get 503)",
       nullptr, 0.0, 3600.0, nullptr, false},
      {"server.model_id", T::String, "", "model id shown in /v1/models; empty = the model file's name", nullptr,
       kNone, kNone, nullptr, false},
  };
  return table;
}

ServerSettings read_settings(const Config& c) {
  ServerSettings s;
  s.model_id = c.get_string("server.model_id");
  s.host = c.get_string("server.host");
  s.port = static_cast<int>(c.get_int("server.port"));
  s.max_parallel = static_cast<std::size_t>(c.get_int("server.max_parallel"));
  s.max_queue = static_cast<std::size_t>(c.get_int("server.max_queue"));
  const auto threads = c.get_int("server.http_threads");
  s.http_threads = threads > 0 ? static_cast<std::size_t>(threads) : s.max_parallel + s.max_queue + kSpareThreads;
  s.max_connections = std::max(s.http_threads, static_cast<std::size_t>(c.get_int("server.max_connections")));
  s.max_body_bytes = static_cast<std::size_t>(c.get_int("server.max_body_bytes"));
  s.request_timeout = std::chrono::seconds(c.get_int("server.request_timeout_s"));
  s.shutdown_grace = std::chrono::seconds(c.get_int("server.shutdown_grace_s"));
  s.request_read_timeout = std::chrono::seconds(c.get_int("server.request_read_timeout_s"));
  s.limits.max_tokens_cap = c.get_int("server.max_tokens_cap");
  s.limits.default_max_tokens = c.get_int("generation.max_tokens");
  s.api_keys = c.get_string_list("server.api_keys");
  s.cors_origins = c.get_string_list("server.cors_origins");
  return s;
}

}  // namespace bitrun::http
