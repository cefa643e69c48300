#include "options.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <optional>

#include "bitrun/base/cpu_features.hpp"
#include "bitrun/base/error.hpp"
#include "bitrun/base/log.hpp"
#include "runtime.hpp"

namespace bitrun::cli {
namespace {

// Shorthand options and the config key each one sets.
struct Shorthand {
  const char* long_name;
  const char* short_name;
  const char* key;
};
constexpr Shorthand kShorthands[] = {
    {"--model", "-m", "model"},
    {"--backend", "-b", "backend"},
    {"--threads", "-t", "threads"},
    {"--log-level", nullptr, "log.level"},
    {"--decoder", nullptr, "decoder.type"},
};

// The configuration's layers as given, applied once per pass; the file is read once (it may be a pipe).
struct Layers {
  std::string file;
  std::string file_text;
  std::vector<std::pair<std::string, std::string>> overrides;   // key, value: after file and environment

  void apply(Config& config, char** envp, Config::UnknownKeys unknown) const {
    if (!file.empty()) config.load_yaml(file_text, file, unknown);
    config.load_environment(envp);
    for (const auto& [key, value] : overrides)
      if (unknown == Config::UnknownKeys::Reject || config.schema().find(key))
        config.set(key, value, ConfigSource::CommandLine, "command line");
  }
};

}  // namespace

std::string common_options_help(const ConfigSchema* schema) {
  std::string plugin_options;
  if (schema)
    for (const auto& key : schema->keys())
      if (!key.option.empty()) {
        std::string left = "  " + key.option + " VALUE";
        left += std::string(left.size() < 25 ? 25 - left.size() : 1, ' ');
        plugin_options += left + "same as --set " + key.path + "=VALUE (" + key.owner + ")\n";
      }
  return "common options:\n"
         "  -c, --config FILE      YAML config file (default: $BITRUN_CONFIG if set)\n"
         "  --set KEY=VALUE        override any config key (repeatable), e.g. --set server.port=9000\n"
         "  -m, --model FILE       same as --set model=FILE\n"
         "  -b, --backend NAME     same as --set backend=NAME (auto, reference, avx512, avx2)\n"
         "  -t, --threads N        same as --set threads=N\n"
         "  --decoder NAME         same as --set decoder.type=NAME\n"
         "  --log-level LEVEL      same as --set log.level=LEVEL\n"
         "  -h, --help             show help\n" +
         plugin_options +
         "Precedence: command line > environment (BITRUN_<KEY>) > config file > defaults.\n";
}

bool CommandLine::has_flag(const std::string& flag) const {
  return std::find(flags.begin(), flags.end(), flag) != flags.end();
}

std::string CommandLine::value(const std::string& option, const std::string& fallback) const {
  auto it = values.find(option);
  return it == values.end() ? fallback : it->second;
}

std::int64_t CommandLine::int_value(const std::string& option, std::int64_t fallback) const {
  auto it = values.find(option);
  if (it == values.end()) return fallback;
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
  if (ec != std::errc{} || end != it->second.data() + it->second.size())
    throw ConfigError("option " + option + ": expected an integer, got '" + it->second + "'");
  return v;
}

CommandLine parse_command_line(const std::vector<std::string>& args, const std::vector<std::string>& known_flags,
                               char** envp, const std::vector<ValueOption>& value_options) {
  CommandLine cl;
  Layers layers;
  // Options no core table knows: a plugin key's shorthand, or a mistake; decided once the plugins are open.
  std::vector<std::pair<std::string, std::optional<std::string>>> deferred;

  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    auto value = [&](const std::string& name) -> std::string {
      if (i + 1 >= args.size()) throw ConfigError("option " + name + " needs a value");
      return args[++i];
    };
    auto eq = arg.find('=');
    std::string name = arg.rfind("--", 0) == 0 && eq != std::string::npos ? arg.substr(0, eq) : arg;
    auto inline_or_next = [&]() { return eq != std::string::npos && name != arg ? arg.substr(eq + 1) : value(name); };

    if (arg == "-h" || arg == "--help") {
      cl.help = true;
    } else if (name == "-c" || name == "--config") {
      layers.file = inline_or_next();
    } else if (name == "--set") {
      std::string assignment = inline_or_next();
      auto pos = assignment.find('=');
      if (pos == std::string::npos || pos == 0) throw ConfigError("--set '" + assignment + "': expected KEY=VALUE");
      layers.overrides.emplace_back(assignment.substr(0, pos), assignment.substr(pos + 1));
    } else if (std::find(known_flags.begin(), known_flags.end(), arg) != known_flags.end()) {
      cl.flags.push_back(arg);
    } else if (auto vo = std::find_if(value_options.begin(), value_options.end(),
                                      [&](const ValueOption& o) {
                                        return name == o.long_name || (!o.short_name.empty() && arg == o.short_name);
                                      });
               vo != value_options.end()) {
      cl.values[vo->long_name] = inline_or_next();
    } else {
      const Shorthand* match = nullptr;
      for (const auto& s : kShorthands)
        if (name == s.long_name || (s.short_name && arg == s.short_name)) match = &s;
      if (match) {
        layers.overrides.emplace_back(match->key, inline_or_next());
      } else if (name.rfind("--", 0) == 0 && name.size() > 2) {
        // A plugin shorthand always takes a value: inline (--port=9000) or the next argument.
        std::optional<std::string> given;
        if (eq != std::string::npos) given = arg.substr(eq + 1);
        else if (i + 1 < args.size()) given = args[++i];
        deferred.emplace_back(name, std::move(given));
      } else if (arg.size() > 1 && arg[0] == '-') {
        throw ConfigError("unknown option '" + arg + "' (see --help)");
      } else {
        cl.positional.push_back(arg);
      }
    }
  }

  if (layers.file.empty())
    if (const char* env = std::getenv(kEnvConfigFile); env && *env) layers.file = env;
  if (!layers.file.empty()) layers.file_text = read_config_file(layers.file);

  Config core;
  layers.apply(core, envp, Config::UnknownKeys::Skip);
  apply_log_settings(core);   // before the plugins log anything
  cl.host = open_plugins(core);

  cl.config = Config(cl.host->config_schema());
  for (const auto& [option, value] : deferred) {
    const ConfigKey* key = cl.config.schema().find_option(option);
    if (!key) throw ConfigError("unknown option '" + option + "' (see --help)");
    if (!value) throw ConfigError("option " + option + " needs a value");
    layers.overrides.emplace_back(key->path, *value);
  }
  layers.apply(cl.config, envp, Config::UnknownKeys::Reject);
  return cl;
}

void apply_log_settings(const Config& config) {
  set_log_level(parse_log_level(config.get_string("log.level")));
  set_log_format(parse_log_format(config.get_string("log.format")));
}

void apply_logging(const CommandLine& cl) {
  apply_log_settings(cl.config);
  for (const auto& name : cl.config.unknown_environment())
    logger("config")->warn("ignoring environment variable {}: not a bitrun config key", name);
}

int resolve_threads(const Config& config) {
  auto threads = config.get_int("threads");
  return threads > 0 ? static_cast<int>(threads) : static_cast<int>(detect_cpu().logical_cpus);
}

}  // namespace bitrun::cli
