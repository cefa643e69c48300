// Errors as OpenAI clients expect them: an HTTP status and {"error":{"message","type","code"}}. Handlers throw
// ApiError; the route wrapper turns it (and any other exception) into a response, so nothing reaches httplib.
#pragma once

#include <stdexcept>
#include <string>

#include "bitrun/base/error.hpp"

namespace bitrun::http {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message)
      : std::runtime_error(with_visible_nul(std::move(message))), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

// The OpenAI error type for a status: invalid_request_error (400, 405, 413), authentication_error (401),
// not_found_error (404), rate_limit_error (429), server_error (500), unavailable_error (503).
const char* error_type(int status);

// The JSON body for an error.
std::string error_body(int status, const std::string& message);

// Shorthands for the common 400s, naming the field.
[[noreturn]] void bad_request(const std::string& message);

}  // namespace bitrun::http
