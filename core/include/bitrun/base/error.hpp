// Error types shared by the core and the plugins.
#pragma once

#include <stdexcept>
#include <string>

namespace bitrun {

// A message as what() can carry it whole: a NUL byte (from a request or a file quoted in the message) would end the
// C string there, so it is written as \0.
std::string with_visible_nul(std::string message);

// Every user-facing failure (bad file, bad config, unusable plugin, bad request) is a bitrun::Error whose
// message names the offending thing, so callers can print it as-is.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(with_visible_nul(message)) {}
  explicit Error(const char* message) : std::runtime_error(message) {}
};

// Malformed or unsupported model file. Separate type so loaders and tests can tell file problems apart.
class FormatError : public Error {
 public:
  using Error::Error;
};

// Invalid configuration (unknown key, wrong type, bad value).
class ConfigError : public Error {
 public:
  using Error::Error;
};

}  // namespace bitrun
