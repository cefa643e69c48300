// Who may call the server: API keys (Authorization: Bearer <key> or X-Api-Key: <key>, checked before routing;
// /health and /v1/models stay public so load balancers and model pickers need no key) and CORS for browser
// clients (allowed origins from server.cors_origins, "*" for any; preflight requests are answered here).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace httplib {
struct Request;
struct Response;
}

namespace bitrun::http {

class AccessPolicy {
 public:
  AccessPolicy(std::vector<std::string> api_keys, std::vector<std::string> cors_origins);

  bool requires_key() const { return !keys_.empty(); }
  // Nothing when the request may proceed; otherwise the 401 message.
  std::optional<std::string> check_key(const httplib::Request& req) const;
  static bool is_public(const std::string& path);

  // Adds Access-Control-Allow-Origin (and Vary) when the request's Origin is allowed.
  void add_cors_headers(const httplib::Request& req, httplib::Response& res) const;
  // A CORS preflight (OPTIONS with Access-Control-Request-Method): answered 204 with what may follow.
  bool answer_preflight(const httplib::Request& req, httplib::Response& res) const;

 private:
  std::optional<std::string> allowed_origin(const httplib::Request& req) const;
  std::vector<std::string> keys_;
  std::vector<std::string> origins_;
};

}  // namespace bitrun::http
