// Error types shared by the core and the plugins.
#pragma once

#include <stdexcept>
#include <string>

namespace bitrun {

// Every user-facing failure (bad file, bad config, unusable plugin, bad request) is a bitrun::Error whose
// message names the offending thing, so callers can print it as-is.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
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
