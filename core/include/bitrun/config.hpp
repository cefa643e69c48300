// Configuration: one schema (config_schema.cpp) lists every key with its type, default and help text. Values
// come from, in increasing precedence: defaults < YAML file < environment (BITRUN_<KEY>) < command line.
// Unknown keys and wrong types are errors naming the key and where it came from.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace bitrun {

enum class ConfigType { String, Int, Float, Bool, StringList };

using ConfigValue = std::variant<std::string, std::int64_t, double, bool, std::vector<std::string>>;

struct ConfigKey {
  std::string path;                    // dotted: "server.port"
  ConfigType type;
  ConfigValue default_value;
  std::string help;                    // one line, written into generated config files
  std::vector<std::string> choices;    // allowed values for String keys; empty = any
  std::optional<double> min, max;      // bounds for Int/Float keys
};

// All keys bitrun understands, in the order they are printed.
const std::vector<ConfigKey>& config_schema();
const ConfigKey* find_config_key(std::string_view path);
// The environment variable for a key: "server.api_keys" -> "BITRUN_SERVER_API_KEYS".
std::string config_env_name(std::string_view path);

enum class ConfigSource { Default, File, Environment, CommandLine };
std::string_view config_source_name(ConfigSource s);

class Config {
 public:
  // Defaults only.
  Config();

  // Layer a YAML file over the current values. Throws ConfigError naming the file and key.
  void load_file(const std::filesystem::path& path);
  // Layer BITRUN_* variables (only those naming schema keys; others are reported by unknown_environment()).
  // `getenv` is injectable for tests.
  void load_environment(char** envp);
  // Layer one "key=value" override from the command line (value parsed as YAML: lists as [a, b]).
  void set_from_cli(std::string_view assignment);
  // Set a single key programmatically, from text as it would appear in YAML.
  void set(std::string_view path, std::string_view yaml_text, ConfigSource source, std::string_view origin);

  // BITRUN_* variables that are neither config keys nor known non-config variables (typos are worth a warning).
  const std::vector<std::string>& unknown_environment() const { return unknown_env_; }

  std::string get_string(std::string_view path) const;
  std::int64_t get_int(std::string_view path) const;
  double get_float(std::string_view path) const;
  bool get_bool(std::string_view path) const;
  std::vector<std::string> get_string_list(std::string_view path) const;

  ConfigSource source_of(std::string_view path) const;
  // Where the effective value came from: "default", the file path, "BITRUN_X", or "command line".
  const std::string& origin_of(std::string_view path) const;
  // The file that was loaded, if any.
  const std::optional<std::filesystem::path>& file() const { return file_; }

  // Effective configuration as YAML with a "# from <origin>" comment per key (`bitrun config --print`).
  std::string to_yaml(bool with_origins) const;

 private:
  struct Entry {
    ConfigValue value;
    ConfigSource source = ConfigSource::Default;
    std::string origin = "default";
  };
  const Entry& entry(std::string_view path) const;
  std::map<std::string, Entry, std::less<>> entries_;
  std::optional<std::filesystem::path> file_;
  std::vector<std::string> unknown_env_;
};

// A commented YAML file with every key at its default (`bitrun generate-config`, configs/default.yaml).
std::string default_config_yaml();

// Environment variables that configure bitrun but are not config keys.
inline constexpr const char* kEnvConfigFile = "BITRUN_CONFIG";        // config file when --config is not given
inline constexpr const char* kEnvPluginPath = "BITRUN_PLUGIN_PATH";   // extra plugin directories, ':'-separated

}  // namespace bitrun
