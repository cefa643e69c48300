#include "api_error.hpp"

#include "bitrun/base/json.hpp"

namespace bitrun::http {

const char* error_type(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    case 503: return "unavailable_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

std::string error_body(int status, const std::string& message) {
  Json error = Json::object();
  error["message"] = message;
  error["type"] = error_type(status);
  error["code"] = status;
  Json body = Json::object();
  body["error"] = std::move(error);
  return body.dump();
}

void bad_request(const std::string& message) { throw ApiError(400, message); }

}  // namespace bitrun::http
