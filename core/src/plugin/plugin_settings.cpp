// A plugin's PluginSetting (plain data in its descriptor) as a ConfigKey of the merged schema.
#include <cmath>

#include "bitrun/base/error.hpp"
#include "bitrun/plugin/plugin_abi.hpp"

namespace bitrun {
namespace {

std::vector<std::string> split_choices(const char* choices) {
  std::vector<std::string> out;
  if (!choices) return out;
  std::string item;
  for (const char* c = choices;; ++c) {
    if (*c == '|' || *c == '\0') {
      if (!item.empty()) out.push_back(item);
      item.clear();
      if (*c == '\0') break;
    } else {
      item += *c;
    }
  }
  return out;
}

std::optional<double> bound(double v) { return std::isnan(v) ? std::nullopt : std::optional<double>(v); }

}  // namespace

ConfigKey config_key_of(const PluginSetting& setting, const std::string& owner) {
  if (!setting.path) throw ConfigError(owner + " declares a config key without a name");
  ConfigKey key;
  key.path = setting.path;
  key.type = setting.type;
  key.help = setting.help ? setting.help : "";
  key.choices = split_choices(setting.choices);
  key.min = bound(setting.min);
  key.max = bound(setting.max);
  key.option = setting.option ? setting.option : "";
  key.owner = owner;
  key.secret = setting.secret;
  switch (key.type) {
    case ConfigType::String: case ConfigType::Int: case ConfigType::Float: case ConfigType::Bool:
    case ConfigType::StringList: break;
    default: throw ConfigError(owner + ": config key '" + key.path + "' has an unknown type");
  }
  // A list default is written as YAML ("[]", "[a, b]"); the scalar parser takes the comma-separated form.
  std::string text = setting.default_value ? setting.default_value : "";
  if (key.type == ConfigType::StringList && text.size() >= 2 && text.front() == '[' && text.back() == ']')
    text = text.substr(1, text.size() - 2);
  key.default_value = parse_config_value(key, text, owner + " (default value)");
  return key;
}

ConfigValue parse_request_option(const PluginSetting& setting, const std::string& option, std::string_view text) {
  ConfigKey key = config_key_of(setting, "a plugin");   // its declaration was checked when the plugin loaded
  key.path = option;
  return parse_config_value(key, text, "decoder option");
}

}  // namespace bitrun
