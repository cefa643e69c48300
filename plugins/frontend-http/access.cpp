#include "access.hpp"

#include <algorithm>

#include <httplib.h>

namespace bitrun::http {
namespace {

// Compares without an early exit, so response time does not reveal how much of a key was right.
bool same_key(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < std::max(a.size(), b.size()); ++i)
    diff |= static_cast<unsigned char>((i < a.size() ? a[i] : 0) ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

}  // namespace

AccessPolicy::AccessPolicy(std::vector<std::string> api_keys, std::vector<std::string> cors_origins)
    : origins_(std::move(cors_origins)) {
  for (auto& k : api_keys)
    if (!k.empty()) keys_.push_back(std::move(k));
}

bool AccessPolicy::is_public(const std::string& path) {
  // The chat page itself is public: it asks for the key and sends it with each API call.
  return path == "/" || path == "/health" || path == "/v1/models" || path.rfind("/v1/models/", 0) == 0;
}

std::optional<std::string> AccessPolicy::check_key(const httplib::Request& req) const {
  if (keys_.empty() || is_public(req.path)) return std::nullopt;
  std::string given;
  const std::string auth = req.get_header_value("Authorization");
  if (auth.size() > 7 && (auth.compare(0, 7, "Bearer ") == 0 || auth.compare(0, 7, "bearer ") == 0))
    given = auth.substr(7);
  else if (req.has_header("X-Api-Key"))
    given = req.get_header_value("X-Api-Key");
  else
    return "missing API key: send 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'";
  bool ok = false;
  for (const auto& k : keys_) ok |= same_key(given, k);
  if (!ok) return "invalid API key";
  return std::nullopt;
}

std::optional<std::string> AccessPolicy::allowed_origin(const httplib::Request& req) const {
  if (!req.has_header("Origin")) return std::nullopt;
  const std::string origin = req.get_header_value("Origin");
  if (std::find(origins_.begin(), origins_.end(), "*") != origins_.end()) return std::string("*");
  if (std::find(origins_.begin(), origins_.end(), origin) != origins_.end()) return origin;
  return std::nullopt;
}

void AccessPolicy::add_cors_headers(const httplib::Request& req, httplib::Response& res) const {
  if (auto origin = allowed_origin(req)) {
    res.set_header("Access-Control-Allow-Origin", *origin);
    if (*origin != "*") res.set_header("Vary", "Origin");
  }
}

bool AccessPolicy::answer_preflight(const httplib::Request& req, httplib::Response& res) const {
  if (req.method != "OPTIONS" || !req.has_header("Access-Control-Request-Method")) return false;
  res.status = 204;
  if (allowed_origin(req)) {
    add_cors_headers(req, res);
    res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    const std::string asked = req.get_header_value("Access-Control-Request-Headers");
    res.set_header("Access-Control-Allow-Headers", asked.empty() ? "Authorization, Content-Type, X-Api-Key" : asked);
    res.set_header("Access-Control-Max-Age", "600");
  }
  return true;
}

}  // namespace bitrun::http
