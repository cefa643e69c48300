// Logging: spdlog loggers in spdlog's shared registry, so the core and every plugin log through the same sinks
// and level. Everything logs to stderr; stdout is reserved for command output (generated text, JSON).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

namespace bitrun {

// The logger for a component ("core", "plugin-host", "backend-avx512", ...), created on first use with the
// current level and sinks.
std::shared_ptr<spdlog::logger> logger(const std::string& component);

// Accepts trace, debug, info, warn, error, critical, off. Throws ConfigError on anything else.
spdlog::level::level_enum parse_log_level(std::string_view name);
void set_log_level(spdlog::level::level_enum level);

}  // namespace bitrun
