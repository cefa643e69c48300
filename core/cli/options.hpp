// Command-line handling shared by every subcommand: the common options that build the effective Config.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bitrun/config.hpp"

namespace bitrun::cli {

struct CommandLine {
  Config config;
  std::vector<std::string> positional;   // arguments left for the subcommand
  std::vector<std::string> flags;        // subcommand-specific --flags (without value) left for the subcommand
  std::map<std::string, std::string> values;   // subcommand-specific options with a value, by long name
  bool help = false;

  bool has_flag(const std::string& flag) const;
  // The value of a subcommand option, or `fallback`.
  std::string value(const std::string& option, const std::string& fallback = "") const;
  // An integer option; a malformed value is a ConfigError naming the option.
  std::int64_t int_value(const std::string& option, std::int64_t fallback) const;
};

// A subcommand option that takes a value: "--prompt" with optional short form "-p".
struct ValueOption {
  std::string long_name;
  std::string short_name;
};

// Parses the common options (--config, --set, --model, --backend, --threads, --log-level) and layers
// defaults < config file < environment < command line. `known_flags` are extra valueless flags the
// subcommand accepts; any other option is an error.
CommandLine parse_command_line(const std::vector<std::string>& args, const std::vector<std::string>& known_flags,
                               char** envp, const std::vector<ValueOption>& value_options = {});

// Text describing the common options, for --help.
std::string common_options_help();

// Applies log.level from the config and warns about unknown BITRUN_* variables.
void apply_logging(const CommandLine& cl);

// threads from config, 0 meaning one per logical CPU.
int resolve_threads(const Config& config);

}  // namespace bitrun::cli
