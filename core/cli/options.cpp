#include "options.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>

#include "bitrun/cpu_features.hpp"
#include "bitrun/error.hpp"
#include "bitrun/log.hpp"

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

}  // namespace

std::string common_options_help() {
  return "common options:\n"
         "  -c, --config FILE      YAML config file (default: $BITRUN_CONFIG if set)\n"
         "  --set KEY=VALUE        override any config key (repeatable), e.g. --set server.port=9000\n"
         "  -m, --model FILE       same as --set model=FILE\n"
         "  -b, --backend NAME     same as --set backend=NAME (auto, reference, avx512, avx2)\n"
         "  -t, --threads N        same as --set threads=N\n"
         "  --decoder NAME         same as --set decoder.type=NAME\n"
         "  --log-level LEVEL      same as --set log.level=LEVEL\n"
         "  -h, --help             show help\n"
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
  std::string config_file;
  std::vector<std::pair<std::string, std::string>> overrides;   // key, value, applied after file and env

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
      config_file = inline_or_next();
    } else if (name == "--set") {
      std::string assignment = inline_or_next();
      auto pos = assignment.find('=');
      if (pos == std::string::npos || pos == 0) throw ConfigError("--set '" + assignment + "': expected KEY=VALUE");
      overrides.emplace_back(assignment.substr(0, pos), assignment.substr(pos + 1));
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
        overrides.emplace_back(match->key, inline_or_next());
      } else if (arg.size() > 1 && arg[0] == '-') {
        throw ConfigError("unknown option '" + arg + "' (see --help)");
      } else {
        cl.positional.push_back(arg);
      }
    }
  }

  if (config_file.empty())
    if (const char* env = std::getenv(kEnvConfigFile); env && *env) config_file = env;
  if (!config_file.empty()) cl.config.load_file(config_file);
  cl.config.load_environment(envp);
  for (const auto& [key, val] : overrides) cl.config.set(key, val, ConfigSource::CommandLine, "command line");
  return cl;
}

void apply_logging(const CommandLine& cl) {
  set_log_level(parse_log_level(cl.config.get_string("log.level")));
  set_log_format(parse_log_format(cl.config.get_string("log.format")));
  for (const auto& name : cl.config.unknown_environment())
    logger("config")->warn("ignoring environment variable {}: not a bitrun config key", name);
}

int resolve_threads(const Config& config) {
  auto threads = config.get_int("threads");
  return threads > 0 ? static_cast<int>(threads) : static_cast<int>(detect_cpu().logical_cpus);
}

}  // namespace bitrun::cli
