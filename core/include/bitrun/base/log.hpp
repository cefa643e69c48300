// Logging: spdlog loggers in spdlog's shared registry, so the core and every plugin log through the same sinks
// and level. Everything logs to stderr; stdout is reserved for command output (generated text, JSON).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <spdlog/spdlog.h>

namespace bitrun {

// The logger for a component ("core", "plugin-host", "backend-avx512", ...), created on first use with the
// current level and sinks.
std::shared_ptr<spdlog::logger> logger(const std::string& component);

// Accepts trace, debug, info, warn, error, critical, off. Throws ConfigError on anything else.
spdlog::level::level_enum parse_log_level(std::string_view name);
void set_log_level(spdlog::level::level_enum level);

// log.format: text (a human-readable line) or json (one JSON object a line: time, level, component, message, and
// an event's fields), for log collectors. Applies to every logger, present and future.
enum class LogFormat { Text, Json };
LogFormat parse_log_format(std::string_view name);   // "text" or "json"; ConfigError otherwise
void set_log_format(LogFormat format);
LogFormat log_format();

// A structured event (one HTTP request, say): in json format one line with `fields` beside the usual keys, in text
// format "message key=value ...". Values are strings, integers or numbers.
using LogValue = std::variant<std::string, std::int64_t, double>;
void log_event(const std::string& component, spdlog::level::level_enum level, std::string_view message,
               const std::vector<std::pair<std::string, LogValue>>& fields);

}  // namespace bitrun
