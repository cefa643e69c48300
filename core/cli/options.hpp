// Command-line handling shared by every subcommand: the common options that build the effective Config.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bitrun/config/config.hpp"
#include "bitrun/plugin/plugin_host.hpp"

namespace bitrun::cli {

struct CommandLine {
  // Opened from the core's keys (plugins.dir, cpu.disable, threads_wait) before the rest of the configuration is
  // read, so that the plugins' keys are known when it is.
  std::unique_ptr<PluginHost> host;
  Config config;                         // the core's keys and those of every plugin found
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

// Parses the common options (--config, --set, --model, --backend, --threads, --log-level, and the shorthands the
// plugins' keys declare, such as --port) and layers defaults < config file < environment < command line, in two
// passes: the core's keys first (skipping the others), which say where the plugins are; then, with the plugins
// open, every key, strictly. `known_flags` are extra valueless flags the subcommand accepts; any other option is
// an error.
CommandLine parse_command_line(const std::vector<std::string>& args, const std::vector<std::string>& known_flags,
                               char** envp, const std::vector<ValueOption>& value_options = {});

// Text describing the common options, for --help; with a schema, also its plugin keys' shorthands.
std::string common_options_help(const ConfigSchema* schema = nullptr);

// Applies log.level and log.format from `config`.
void apply_log_settings(const Config& config);
// apply_log_settings(cl.config), and warns about unknown BITRUN_* variables.
void apply_logging(const CommandLine& cl);

// threads from config, 0 meaning one per logical CPU.
int resolve_threads(const Config& config);

}  // namespace bitrun::cli
