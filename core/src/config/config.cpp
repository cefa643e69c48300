#include "bitrun/config/config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "bitrun/base/error.hpp"

namespace bitrun {
namespace {

// Environment variables starting with BITRUN_ that are not config keys, so they are not reported as typos.
constexpr const char* kKnownNonKeyEnv[] = {kEnvConfigFile, kEnvPluginPath, "BITRUN_SHARED_DIR",
                                           "BITRUN_BUILD_DIR"};   // the scripts' build folder

std::string_view type_name(ConfigType t) {
  switch (t) {
    case ConfigType::String: return "a string";
    case ConfigType::Int: return "an integer";
    case ConfigType::Float: return "a number";
    case ConfigType::Bool: return "true or false";
    case ConfigType::StringList: return "a list of strings";
  }
  return "?";
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

[[noreturn]] void bad_value(const ConfigKey& key, std::string_view where, std::string_view why) {
  throw ConfigError(std::string(where) + ": key '" + key.path + "': " + std::string(why));
}

std::string scalar_text(const YAML::Node& node) { return node.Scalar(); }

// The key's bounds (either may be absent), checked on an Int or Float value.
template <typename T>
void check_range(const ConfigKey& key, std::string_view where, T v) {
  const auto d = static_cast<double>(v);
  if ((key.min && d < *key.min) || (key.max && d > *key.max)) {
    std::ostringstream range;
    range << "value " << v << " is out of range [" << key.min.value_or(-INFINITY) << ", "
          << key.max.value_or(INFINITY) << "]";
    bad_value(key, where, range.str());
  }
}

ConfigValue parse_scalar(const ConfigKey& key, const std::string& text, std::string_view where) {

  switch (key.type) {
    case ConfigType::String: {
      if (!key.choices.empty() && std::find(key.choices.begin(), key.choices.end(), text) == key.choices.end()) {
        std::string allowed;
        for (const auto& c : key.choices) allowed += (allowed.empty() ? "" : ", ") + c;
        bad_value(key, where, "'" + text + "' is not one of: " + allowed);
      }
      return text;
    }
    case ConfigType::Int: {
      std::int64_t v = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec != std::errc{} || end != text.data() + text.size())
        bad_value(key, where, "expected " + std::string(type_name(key.type)) + ", got '" + text + "'");
      check_range(key, where, v);
      return v;
    }
    case ConfigType::Float: {
      char* end = nullptr;
      double v = text.empty() ? NAN : std::strtod(text.c_str(), &end);
      if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v))
        bad_value(key, where, "expected " + std::string(type_name(key.type)) + ", got '" + text + "'");
      check_range(key, where, v);
      return v;
    }
    case ConfigType::Bool: {
      std::string t = lower(text);
      if (t == "true" || t == "yes" || t == "on" || t == "1") return true;
      if (t == "false" || t == "no" || t == "off" || t == "0") return false;
      bad_value(key, where, "expected true or false, got '" + text + "'");
    }
    case ConfigType::StringList: {
      // A plain scalar (environment variable, --set) is a comma-separated list.
      std::vector<std::string> items;
      std::string item;
      std::istringstream in(text);
      while (std::getline(in, item, ',')) {
        auto b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
        if (b != std::string::npos) items.push_back(item.substr(b, e - b + 1));
      }
      return items;
    }
  }
  bad_value(key, where, "unsupported type");
}

ConfigValue parse_node(const ConfigKey& key, const YAML::Node& node, std::string_view where) {
  if (node.IsNull()) bad_value(key, where, "has no value (expected " + std::string(type_name(key.type)) + ")");
  if (key.type == ConfigType::StringList) {
    if (node.IsScalar()) return parse_scalar(key, scalar_text(node), where);
    if (!node.IsSequence()) bad_value(key, where, "expected a list of strings");
    std::vector<std::string> items;
    for (const auto& item : node) {
      if (!item.IsScalar()) bad_value(key, where, "list items must be strings");
      items.push_back(item.Scalar());
    }
    return items;
  }
  if (!node.IsScalar()) bad_value(key, where, "expected " + std::string(type_name(key.type)) + ", got a " +
                                                  (node.IsMap() ? "mapping" : "list"));
  return parse_scalar(key, scalar_text(node), where);
}

std::string location(const std::filesystem::path& file, const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  return file.string() + (mark.line >= 0 ? ":" + std::to_string(mark.line + 1) : "");
}

std::string yaml_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') { out += "\\n"; continue; }
    out += c;
  }
  return out + "\"";
}

std::string_view section_of(std::string_view path) {
  auto dot = path.find('.');
  return dot == std::string_view::npos ? std::string_view{} : path.substr(0, dot);
}

// Renders keys grouped by their first path segment, the sections in order of first appearance (a plugin's keys
// join the core's section of the same name); `annotate` returns the comment for a key (or "").
template <typename ValueOf, typename Annotate>
std::string render_yaml(const ConfigSchema& schema, ValueOf value_of, Annotate annotate, bool comments_above) {
  std::vector<std::string_view> sections;
  for (const auto& key : schema.keys())
    if (std::find(sections.begin(), sections.end(), section_of(key.path)) == sections.end())
      sections.push_back(section_of(key.path));
  std::string out;
  for (std::string_view section : sections) {
    if (!section.empty()) out += "\n" + std::string(section) + ":\n";
    for (const auto& key : schema.keys()) {
      if (section_of(key.path) != section) continue;
      std::string leaf = section.empty() ? key.path : key.path.substr(section.size() + 1);
      std::string indent = section.empty() ? "" : "  ";
      std::string note = annotate(key);
      if (comments_above && !note.empty()) out += indent + "# " + note + "\n";
      out += indent + leaf + ": " + value_of(key);
      if (!comments_above && !note.empty()) out += "   # " + note;
      out += "\n";
    }
  }
  return out;
}

bool valid_key_path(std::string_view path) {
  if (path.empty() || path.front() == '.' || path.back() == '.' || path.find("..") != std::string_view::npos)
    return false;
  return std::all_of(path.begin(), path.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
  });
}

}  // namespace

std::string config_value_yaml(const ConfigValue& value) {
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return yaml_quote(v);
        } else if constexpr (std::is_same_v<T, bool>) {
          return v ? "true" : "false";
        } else if constexpr (std::is_same_v<T, std::int64_t>) {
          return std::to_string(v);
        } else if constexpr (std::is_same_v<T, double>) {
          char buf[64];
          auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
          std::string s(buf, end);
          if (s.find_first_of(".e") == std::string::npos) s += ".0";   // keep it a float for readers
          return s;
        } else {
          std::string out = "[";
          for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + yaml_quote(v[i]);
          return out + "]";
        }
      },
      value);
}

ConfigSchema::ConfigSchema(std::vector<ConfigKey> keys) {
  for (auto& key : keys) add(std::move(key));
}

void ConfigSchema::add(ConfigKey key) {
  const std::string who = key.owner.empty() ? "the core" : key.owner;
  if (!valid_key_path(key.path))
    throw ConfigError("config key '" + key.path + "' (from " + who +
                      "): a key is lower-case words (a-z, 0-9, _) joined by dots");
  if (const ConfigKey* taken = find(key.path))
    throw ConfigError("config key '" + key.path + "' (from " + who + ") is already defined by " +
                      (taken->owner.empty() ? "the core" : taken->owner));
  const std::string env = config_env_name(key.path);
  for (const auto& other : keys_) {
    const std::string owner = other.owner.empty() ? "the core" : other.owner;
    const bool inside = key.path.rfind(other.path + ".", 0) == 0, contains = other.path.rfind(key.path + ".", 0) == 0;
    if (inside || contains)
      throw ConfigError("config key '" + key.path + "' (from " + who + ") clashes with '" + other.path + "' (from " +
                        owner + "): a key cannot also be a section");
    if (config_env_name(other.path) == env)
      throw ConfigError("config key '" + key.path + "' (from " + who + ") has the environment variable " + env +
                        " of '" + other.path + "'");
  }
  if (!key.option.empty()) {
    if (key.option.size() < 3 || key.option.rfind("--", 0) != 0)
      throw ConfigError("config key '" + key.path + "' (from " + who + "): option '" + key.option +
                        "' must start with --");
    if (const ConfigKey* taken = find_option(key.option))
      throw ConfigError("config key '" + key.path + "' (from " + who + "): option " + key.option +
                        " already sets '" + taken->path + "'");
  }
  index_.emplace(key.path, keys_.size());
  keys_.push_back(std::move(key));
}

const ConfigKey* ConfigSchema::find(std::string_view path) const {
  auto it = index_.find(path);
  return it == index_.end() ? nullptr : &keys_[it->second];
}

const ConfigKey* ConfigSchema::find_option(std::string_view option) const {
  for (const auto& key : keys_)
    if (!key.option.empty() && key.option == option) return &key;
  return nullptr;
}

bool ConfigSchema::is_section(std::string_view prefix) const {
  const std::string with_dot = std::string(prefix) + ".";
  return std::any_of(keys_.begin(), keys_.end(), [&](const ConfigKey& k) { return k.path.rfind(with_dot, 0) == 0; });
}

std::string ConfigSchema::unknown_key_message(std::string_view path) const {
  std::string msg = "unknown key '" + std::string(path) + "'";
  const ConfigKey* best = nullptr;
  std::size_t best_distance = 4;   // suggest only close matches
  for (const auto& key : keys_) {
    std::size_t d = edit_distance(path, key.path);
    if (d < best_distance) best_distance = d, best = &key;
  }
  if (best) msg += " (did you mean '" + best->path + "'?)";
  if (!unknown_key_hint.empty()) msg += "; " + unknown_key_hint;
  return msg;
}

ConfigValue parse_config_value(const ConfigKey& key, std::string_view text, std::string_view where) {
  return parse_scalar(key, std::string(text), where);
}

std::string config_env_name(std::string_view path) {
  std::string name = "BITRUN_";
  for (char c : path) name += c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return name;
}

std::string_view config_source_name(ConfigSource s) {
  switch (s) {
    case ConfigSource::Default: return "default";
    case ConfigSource::File: return "file";
    case ConfigSource::Environment: return "environment";
    case ConfigSource::CommandLine: return "command line";
  }
  return "?";
}

Config::Config() : Config(core_config_schema()) {}

Config::Config(std::shared_ptr<const ConfigSchema> schema) : schema_(std::move(schema)) {
  for (const auto& key : schema_->keys()) entries_.emplace(key.path, Entry{key.default_value});
}

std::string read_config_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path.string() + ": cannot open config file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError(path.string() + ": cannot read config file");
  return text.str();
}

void Config::load_file(const std::filesystem::path& path, UnknownKeys unknown) {
  load_yaml(read_config_file(path), path, unknown);
}

void Config::load_yaml(const std::string& text, const std::filesystem::path& path, UnknownKeys unknown) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(path.string() + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
  }
  file_ = path;
  if (root.IsNull()) return;   // an empty file changes nothing
  if (!root.IsMap()) throw ConfigError(path.string() + ": the top level must be a mapping of keys to values");

  // Walk nested mappings; every leaf must be a schema key. Parse everything before applying anything so a bad
  // file leaves the config unchanged.
  std::vector<std::pair<std::string, ConfigValue>> parsed;
  auto walk = [&](auto&& self, const YAML::Node& map, const std::string& prefix) -> void {
    for (const auto& kv : map) {
      if (!kv.first.IsScalar()) throw ConfigError(location(path, kv.first) + ": keys must be plain names");
      std::string full = prefix.empty() ? kv.first.Scalar() : prefix + "." + kv.first.Scalar();
      const ConfigKey* key = schema_->find(full);
      if (key) {
        parsed.emplace_back(full, parse_node(*key, kv.second, location(path, kv.second)));
        continue;
      }
      if (!schema_->is_section(full)) {
        if (unknown == UnknownKeys::Skip) continue;
        throw ConfigError(location(path, kv.first) + ": " + schema_->unknown_key_message(full));
      }
      if (!kv.second.IsMap())
        throw ConfigError(location(path, kv.second) + ": key '" + full + "' is a section and must be a mapping");
      self(self, kv.second, full);
    }
  };
  walk(walk, root, "");
  for (auto& [k, v] : parsed) entries_[k] = Entry{std::move(v), ConfigSource::File, path.string()};
}

void Config::set(std::string_view path, std::string_view yaml_text, ConfigSource source, std::string_view origin) {
  const ConfigKey* key = schema_->find(path);
  if (!key) throw ConfigError(std::string(origin) + ": " + schema_->unknown_key_message(path));
  YAML::Node node;
  try {
    node = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    throw ConfigError(std::string(origin) + ": key '" + key->path + "': invalid value: " + e.msg);
  }
  // Strings are taken verbatim, so "08" or "yes" stay what the user typed.
  ConfigValue value = key->type == ConfigType::String
                          ? parse_scalar(*key, std::string(yaml_text), origin)
                          : (node.IsScalar() ? parse_scalar(*key, node.Scalar(), origin)
                                             : parse_node(*key, node, origin));
  entries_[key->path] = Entry{std::move(value), source, std::string(origin)};
}

void Config::load_environment(char** envp) {
  unknown_env_.clear();
  for (char** e = envp; e && *e; ++e) {
    std::string_view entry(*e);
    if (entry.rfind("BITRUN_", 0) != 0) continue;
    auto eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view name = entry.substr(0, eq), value = entry.substr(eq + 1);
    const ConfigKey* match = nullptr;
    for (const auto& key : schema_->keys())
      if (config_env_name(key.path) == name) match = &key;
    if (match) {
      set(match->path, value, ConfigSource::Environment, name);
    } else if (std::none_of(std::begin(kKnownNonKeyEnv), std::end(kKnownNonKeyEnv),
                            [&](const char* known) { return name == known; })) {
      unknown_env_.emplace_back(name);
    }
  }
}

void Config::set_from_cli(std::string_view assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string_view::npos || eq == 0)
    throw ConfigError("--set '" + std::string(assignment) + "': expected key=value");
  set(assignment.substr(0, eq), assignment.substr(eq + 1), ConfigSource::CommandLine, "command line");
}

const Config::Entry& Config::entry(std::string_view path) const {
  auto it = entries_.find(path);
  if (it == entries_.end()) throw ConfigError("internal: no config key '" + std::string(path) + "'");
  return it->second;
}

template <typename T>
static const T& typed(const ConfigValue& v, std::string_view path) {
  if (const T* p = std::get_if<T>(&v)) return *p;
  throw ConfigError("internal: config key '" + std::string(path) + "' read with the wrong type");
}

std::string Config::get_string(std::string_view p) const { return typed<std::string>(entry(p).value, p); }
std::int64_t Config::get_int(std::string_view p) const { return typed<std::int64_t>(entry(p).value, p); }
double Config::get_float(std::string_view p) const { return typed<double>(entry(p).value, p); }
bool Config::get_bool(std::string_view p) const { return typed<bool>(entry(p).value, p); }
std::vector<std::string> Config::get_string_list(std::string_view p) const {
  return typed<std::vector<std::string>>(entry(p).value, p);
}
const ConfigValue& Config::value(std::string_view p) const { return entry(p).value; }
ConfigSource Config::source_of(std::string_view p) const { return entry(p).source; }
const std::string& Config::origin_of(std::string_view p) const { return entry(p).origin; }

std::string Config::to_yaml(bool with_origins) const {
  auto value_of = [&](const ConfigKey& key) {
    const Entry& e = entry(key.path);
    if (key.secret) {
      if (const auto* list = std::get_if<std::vector<std::string>>(&e.value); list && !list->empty())
        return std::string("[\"<") + std::to_string(list->size()) + " key(s) hidden>\"]";
      if (const auto* text = std::get_if<std::string>(&e.value); text && !text->empty())
        return std::string("\"<hidden>\"");
    }
    return config_value_yaml(e.value);
  };
  auto annotate = [&](const ConfigKey& key) {
    const Entry& e = entry(key.path);
    return with_origins && e.source != ConfigSource::Default ? "from " + e.origin : std::string();
  };
  return "# bitrun effective configuration\n" + render_yaml(*schema_, value_of, annotate, false);
}

std::string default_config_yaml(const ConfigSchema& schema) {
  std::string header =
      "# bitrun configuration. Every key is optional; shown here with its default.\n"
      "# Precedence: command line (--set key=value) > environment (BITRUN_<KEY>, dots as underscores)\n"
      "#             > this file > built-in defaults.\n"
      "# Written by `bitrun generate-config`; `bitrun config --print` shows the effective values.\n";
  return header + render_yaml(schema, [](const ConfigKey& key) { return config_value_yaml(key.default_value); },
                              [](const ConfigKey& key) {
                                // A plugin's key says which plugin it needs: without that plugin it is unknown.
                                return key.owner.empty() ? key.help : key.help + " [" + key.owner + "]";
                              },
                              true);
}

}  // namespace bitrun
