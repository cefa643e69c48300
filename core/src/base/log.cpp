#include "bitrun/base/log.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <mutex>

#include "bitrun/base/error.hpp"
#include "bitrun/base/utf8.hpp"

namespace bitrun {
namespace {

constexpr const char* kTextPattern = "[%H:%M:%S.%e] [%n] [%^%l%$] %v";
std::atomic<LogFormat> g_format{LogFormat::Text};

// UTC, millisecond precision, RFC 3339.
std::string utc_time(std::chrono::system_clock::time_point t) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(t);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

// {"time":..., "level":..., "component":..., "message":...  (no closing brace: events add fields).
std::string json_head(std::chrono::system_clock::time_point t, spdlog::level::level_enum level,
                      std::string_view component, std::string_view message) {
  std::string out = "{\"time\":\"" + utc_time(t) + "\",\"level\":";
  const auto name = spdlog::level::to_string_view(level);
  unicode::append_json_string(out, std::string_view(name.data(), name.size()));
  out += ",\"component\":";
  unicode::append_json_string(out, component);
  out += ",\"message\":";
  unicode::append_json_string(out, message);
  return out;
}

// log.format json for every logger: one object a line. An event's line arrives whole (see log_event), marked by
// a leading NUL that cannot occur in a message otherwise.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string_view payload(msg.payload.data(), msg.payload.size());
    std::string line;
    if (!payload.empty() && payload[0] == '\0') {
      line.assign(payload.substr(1));
    } else {
      line = json_head(msg.time, msg.level, std::string_view(msg.logger_name.data(), msg.logger_name.size()),
                       payload);
      line += '}';
    }
    line += '\n';
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

void apply_format(spdlog::logger& l, LogFormat format) {
  if (format == LogFormat::Json) l.set_formatter(std::make_unique<JsonFormatter>());
  else l.set_pattern(kTextPattern);
}

std::mutex& registry_mutex() {
  static std::mutex mutex;
  return mutex;
}

}  // namespace

std::shared_ptr<spdlog::logger> logger(const std::string& component) {
  // spdlog's registry lives in the shared libspdlog, so a plugin asking for "backend-avx2" gets the same object
  // the core would. The mutex only keeps two first uses from racing to create it.
  std::lock_guard<std::mutex> lock(registry_mutex());
  if (auto existing = spdlog::get(component)) return existing;
  auto created = spdlog::stderr_color_mt(component);
  created->set_level(spdlog::get_level());
  apply_format(*created, g_format.load());
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

LogFormat parse_log_format(std::string_view name) {
  if (name == "text") return LogFormat::Text;
  if (name == "json") return LogFormat::Json;
  throw ConfigError("unknown log format '" + std::string(name) + "' (expected text or json)");
}

void set_log_format(LogFormat format) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  g_format = format;
  spdlog::apply_all([format](const std::shared_ptr<spdlog::logger>& l) { apply_format(*l, format); });
}

LogFormat log_format() { return g_format.load(); }

void log_event(const std::string& component, spdlog::level::level_enum level, std::string_view message,
               const std::vector<std::pair<std::string, LogValue>>& fields) {
  auto l = logger(component);
  if (!l->should_log(level)) return;
  std::string line;
  if (log_format() == LogFormat::Json) {
    line = std::string(1, '\0') + json_head(std::chrono::system_clock::now(), level, component, message);
    for (const auto& [key, value] : fields) {
      line += ',';
      unicode::append_json_string(line, key);
      line += ':';
      if (const auto* s = std::get_if<std::string>(&value)) {
        unicode::append_json_string(line, *s);
      } else if (const auto* i = std::get_if<std::int64_t>(&value)) {
        line += std::to_string(*i);
      } else {
        const double d = std::get<double>(value);
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.6g", d);
        line += std::isfinite(d) ? buf : "null";
      }
    }
    line += '}';
  } else {
    line.assign(message);
    for (const auto& [key, value] : fields) {
      line += ' ' + key + '=';
      if (const auto* s = std::get_if<std::string>(&value)) line += *s;
      else if (const auto* i = std::get_if<std::int64_t>(&value)) line += std::to_string(*i);
      else line += fmt::format("{:.6g}", std::get<double>(value));
    }
  }
  l->log(level, "{}", line);
}

}  // namespace bitrun
