// Configuration: a schema lists every key with its type, default and help text: the core's own keys
// (config_schema.cpp) and the keys each loaded plugin declares in its descriptor (plugin_abi.hpp), merged by the
// plugin host. Values come from, in increasing precedence: defaults < YAML file < environment (BITRUN_<KEY>) <
// command line. Unknown keys and wrong types are errors naming the key and where it came from.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
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
  std::string option;                  // a command-line shorthand for --set path=VALUE ("--port"); empty = none
  std::string owner;                   // empty for the core's keys, else the plugin that declared the key
  bool secret = false;                 // printed as a count, never as its values (API keys)
};

// The keys a Config accepts, in the order they were added (printed grouped by section, in order of appearance).
class ConfigSchema {
 public:
  ConfigSchema() = default;
  explicit ConfigSchema(std::vector<ConfigKey> keys);
  // ConfigError when the path is malformed, already taken, or a section of (or inside) another key.
  void add(ConfigKey key);
  const std::vector<ConfigKey>& keys() const { return keys_; }
  const ConfigKey* find(std::string_view path) const;
  const ConfigKey* find_option(std::string_view option) const;
  // True when some key lives below `prefix.`.
  bool is_section(std::string_view prefix) const;
  // "unknown key 'x'" with the closest key as a suggestion, and `unknown_key_hint` when set.
  std::string unknown_key_message(std::string_view path) const;
  // Appended to unknown-key errors (the plugin host says where plugin keys come from).
  std::string unknown_key_hint;

 private:
  std::vector<ConfigKey> keys_;
  std::map<std::string, std::size_t, std::less<>> index_;
};

// The core's own keys (every command, with or without plugins).
const std::shared_ptr<const ConfigSchema>& core_config_schema();

// `text` as a value of `key` (the YAML scalar rules: numbers, true/false, comma-separated lists), with its
// choices and bounds checked. ConfigError "<where>: key '<path>': ..." otherwise.
ConfigValue parse_config_value(const ConfigKey& key, std::string_view text, std::string_view where);
// A value as YAML text: strings quoted, lists as [a, b], floats always with a point (what config --print writes).
std::string config_value_yaml(const ConfigValue& value);
// The environment variable for a key: "server.api_keys" -> "BITRUN_SERVER_API_KEYS".
std::string config_env_name(std::string_view path);

enum class ConfigSource { Default, File, Environment, CommandLine };
std::string_view config_source_name(ConfigSource s);

class Config {
 public:
  // The core's keys at their defaults.
  Config();
  // The keys of `schema` at their defaults (PluginHost::config_schema() adds the plugins' keys).
  explicit Config(std::shared_ptr<const ConfigSchema> schema);

  const ConfigSchema& schema() const { return *schema_; }

  // What a layer does with a key the schema does not have: an error (the final configuration), or skipping it
  // (the first pass, which reads only what finding the plugins needs, before their keys are known).
  enum class UnknownKeys { Reject, Skip };
  // Layer a YAML file over the current values. Throws ConfigError naming the file and key.
  void load_file(const std::filesystem::path& path, UnknownKeys unknown = UnknownKeys::Reject);
  // The same for YAML text already read from `path` (a file read once and applied in two passes: a pipe cannot
  // be read twice).
  void load_yaml(const std::string& text, const std::filesystem::path& path, UnknownKeys unknown);
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
  // The value whatever its type (a plugin that walks its own settings table).
  const ConfigValue& value(std::string_view path) const;

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
  std::shared_ptr<const ConfigSchema> schema_;
  std::map<std::string, Entry, std::less<>> entries_;
  std::optional<std::filesystem::path> file_;
  std::vector<std::string> unknown_env_;
};

// The text of a config file; ConfigError naming it when it cannot be opened or read.
std::string read_config_file(const std::filesystem::path& path);

// A commented YAML file with every key of `schema` at its default (`bitrun generate-config`,
// configs/default.yaml).
std::string default_config_yaml(const ConfigSchema& schema);

// Environment variables that configure bitrun but are not config keys.
inline constexpr const char* kEnvConfigFile = "BITRUN_CONFIG";        // config file when --config is not given
inline constexpr const char* kEnvPluginPath = "BITRUN_PLUGIN_PATH";   // extra plugin directories, ':'-separated

}  // namespace bitrun
