#include "bitrun/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <array>
#include <mutex>

#include "bitrun/error.hpp"

namespace bitrun {

std::shared_ptr<spdlog::logger> logger(const std::string& component) {
  // spdlog's registry lives in the shared libspdlog, so a plugin asking for "backend-avx2" gets the same object
  // the core would. The mutex only keeps two first uses from racing to create it.
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto existing = spdlog::get(component)) return existing;
  auto created = spdlog::stderr_color_mt(component);
  created->set_level(spdlog::get_level());
  created->set_pattern("[%H:%M:%S.%e] [%n] [%^%l%$] %v");
  return created;
}

spdlog::level::level_enum parse_log_level(std::string_view name) {
  static constexpr std::array<std::pair<std::string_view, spdlog::level::level_enum>, 7> kLevels = {{
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug}, {"info", spdlog::level::info},
      {"warn", spdlog::level::warn}, {"error", spdlog::level::err}, {"critical", spdlog::level::critical},
      {"off", spdlog::level::off}}};
  for (const auto& [text, level] : kLevels)
    if (text == name) return level;
  throw ConfigError("unknown log level '" + std::string(name) +
                    "' (expected trace, debug, info, warn, error, critical or off)");
}

void set_log_level(spdlog::level::level_enum level) {
  spdlog::set_level(level);   // applies to every registered logger and becomes the default for new ones
}

}  // namespace bitrun
