// The plugin ABI: what every plugin .so exports and how the host reads it.
//
// Each plugin exports, with BOOST_DLL_ALIAS (read by the host with get_alias), exactly:
//   bitrun_plugin_abi_version   std::uint32_t()               checked before anything else is touched
//   bitrun_plugin_descriptor    const PluginDescriptor&()     kind, name, version, CPU requirements, score,
//                                                             the configuration keys the plugin adds
//   bitrun_create_<kind>        factory, see backend.hpp / decoder.hpp / frontend.hpp
// The first two must live in a translation unit compiled WITHOUT ISA flags (no -mavx512*), so the host can ask
// an AVX-512 plugin whether it can run on a CPU without AVX-512 and get an answer instead of SIGILL.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include <boost/dll/alias.hpp>

#include "bitrun/config/config.hpp"
#include "bitrun/base/cpu_features.hpp"

namespace bitrun {

// Bump whenever a public header a plugin compiles against changes in a way that changes layout or vtables.
inline constexpr std::uint32_t kPluginAbiVersion = 9;

enum class PluginKind : std::uint32_t { Backend = 1, Decoder = 2, Frontend = 3 };

const char* plugin_kind_name(PluginKind kind);

// PluginSetting::min / max of a key without that bound.
inline constexpr double kUnbounded = std::numeric_limits<double>::quiet_NaN();

// One configuration key a plugin adds. The host merges every loaded plugin's keys with the core's before it
// reads the YAML file, the environment and --set, so they are validated, printed by `bitrun config` and written
// by `bitrun generate-config` like the core's; the plugin reads them from the Config its factory gets.
struct PluginSetting {
  const char* path;            // dotted, lower-case: "decoder.threshold"; must not clash with another key
  ConfigType type;
  const char* default_value;   // as it would be written in YAML: "0.9", "iterative", "[]"
  const char* help;            // one line
  const char* choices;         // String keys: the allowed values separated by '|' ("a|b|c"); nullptr = any
  double min, max;             // Int / Float bounds; kUnbounded = none
  const char* option;          // a command-line shorthand for --set path=VALUE ("--port"); nullptr = none
  bool secret;                 // never printed (API keys)
};

// Plain data so reading it runs no plugin code beyond the accessor itself.
struct PluginDescriptor {
  PluginKind kind;
  const char* name;          // what configs refer to: "avx512", "ar", "http"
  const char* version;
  const char* description;
  CpuFeatureMask required_features;   // all must be present to run (backends; 0 for others)
  // Preference among runnable plugins of the same kind, given the usable features; 0 means "cannot run here".
  // Must not execute ISA-specific code.
  std::int32_t (*score)(CpuFeatureMask available);
  const PluginSetting* settings;   // `setting_count` keys this plugin adds (nullptr / 0: none)
  std::size_t setting_count;
};

// A plugin's setting as the schema's key (its default parsed and checked against its own type and bounds).
// ConfigError naming the key when the declaration is inconsistent.
ConfigKey config_key_of(const PluginSetting& setting, const std::string& owner);

// A request's override of `setting` (DecodeRequest::decoder_options: `option` is its name without the section)
// parsed and checked as the configuration key is; a ConfigError names the option as the request spelled it.
ConfigValue parse_request_option(const PluginSetting& setting, const std::string& option, std::string_view text);

// Plugins typically use this score: base_score when every required feature is present, else 0.
constexpr std::int32_t score_if_runnable(CpuFeatureMask available, CpuFeatureMask required, std::int32_t base_score) {
  return (available & required) == required ? base_score : 0;
}

}  // namespace bitrun

// Export the ABI version and the descriptor accessor of a plugin. Use once per plugin, at global scope, in the
// descriptor translation unit.
#define BITRUN_PLUGIN_ABI_EXPORT(descriptor_function)                                  \
  namespace bitrun_plugin_detail {                                                     \
  inline std::uint32_t abi_version() { return ::bitrun::kPluginAbiVersion; }           \
  }                                                                                    \
  BOOST_DLL_ALIAS(bitrun_plugin_detail::abi_version, bitrun_plugin_abi_version)        \
  BOOST_DLL_ALIAS(descriptor_function, bitrun_plugin_descriptor)
