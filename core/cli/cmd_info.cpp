// `bitrun info`: what this machine can run and what bitrun would choose.
#include <cstdio>
#include <iostream>

#include "bitrun/base/error.hpp"
#include "bitrun/plugin/plugin_host.hpp"
#include "bitrun/version.hpp"
#include "commands.hpp"
#include "options.hpp"
#include "runtime.hpp"

namespace bitrun::cli {

int run_info(const Args& args, char** envp) {
  CommandLine cl = parse_command_line(args, {}, envp);
  if (cl.help) {
    std::cout << "usage: bitrun info [options]\n"
                 "Shows the CPU features, the plugins found (kind, version, required ISA, score, why skipped)\n"
                 "the backend bitrun would use with this configuration, and the model it would load.\n\n"
              << common_options_help();
    return 0;
  }
  apply_logging(cl);
  const Config& config = cl.config;
  const CpuInfo& detected = detect_cpu();
  const PluginHost& host = *cl.host;   // opened with the same search path and cpu.disable
  const CpuInfo& cpu = host.cpu();

  std::cout << "bitrun " << kVersion << "\n\n";
  std::cout << "CPU: " << (detected.brand.empty() ? "(no brand string)" : detected.brand) << " [" << detected.vendor
            << "], " << detected.logical_cpus << " logical CPUs\n";
  std::cout << "  OS-enabled register state: ymm " << (detected.os_saves_ymm ? "yes" : "no") << ", zmm "
            << (detected.os_saves_zmm ? "yes" : "no") << "\n";
  std::cout << "  usable features: " << cpu_feature_list(cpu.features) << "\n";
  if (cpu.features != detected.features)
    std::cout << "  disabled by cpu.disable: " << cpu_feature_list(detected.features & ~cpu.features) << "\n";

  std::cout << "\nPlugin search path (first match wins):\n";
  for (const auto& dir : host.search_dirs()) {
    std::error_code ec;
    std::cout << "  " << dir.string() << (std::filesystem::is_directory(dir, ec) ? "" : "  (missing)") << "\n";
  }

  std::cout << "\nPlugins:\n";
  std::printf("  %-9s %-10s %-8s %-6s %-60s %s\n", "KIND", "NAME", "VERSION", "SCORE", "REQUIRES", "STATUS");
  std::printf("  %-9s %-10s %-8s %-6d %-60s %s\n", "backend", "reference", kVersion, 1, "-", "built in");
  for (const auto& p : host.plugins()) {
    std::string status = p.skip_reason(cpu);
    if (status.empty()) status = "ok";
    if (!p.error.empty()) {
      std::printf("  %-9s %-10s %-8s %-6s %-60s skipped: %s\n", "?", p.file.filename().c_str(), "-", "-", "-",
                  status.c_str());
      continue;
    }
    std::string requires_isa = p.required_features ? cpu_feature_list(p.required_features) : "-";
    std::printf("  %-9s %-10s %-8s %-6d %-60s %s\n", plugin_kind_name(p.kind), p.name.c_str(), p.version.c_str(),
                p.score, requires_isa.c_str(), status == "ok" ? "ok" : ("skipped: " + status).c_str());
  }
  std::cout << "\nPlugin settings (config keys each plugin adds):\n";
  bool any_settings = false;
  for (const auto& p : host.plugins()) {
    if (!p.usable() || p.settings.empty()) continue;
    std::string keys;
    for (const auto& key : p.settings) keys += (keys.empty() ? "" : ", ") + key.path;
    std::cout << "  " << p.name << ": " << keys << "\n";
    any_settings = true;
  }
  if (!any_settings) std::cout << "  none\n";

  std::string requested = config.get_string("backend");
  std::cout << "\nBackend requested: " << requested;
  if (config.source_of("backend") != ConfigSource::Default) std::cout << " (from " << config.origin_of("backend") << ")";
  std::cout << "\n";
  BackendChoice choice = host.choose_backend(requested);   // throws with the reason when a forced one cannot run
  std::cout << "Backend chosen: " << choice.name << " (" << choice.reason << ")\n";
  std::cout << "Threads: " << resolve_threads(config) << "\n";
  std::cout << "Decoder default: " << config.get_string("decoder.type") << "\n";
  std::cout << "Frontend: " << config.get_string("frontend.type") << "\n";
  if (const std::string model = config.get_string("model"); !model.empty()) {
    std::cout << "Model: " << model << " (from " << config.origin_of("model") << ")\n";
  } else {
    try {
      std::cout << "Model: built-in default " << default_model_path().string() << "\n";
    } catch (const ConfigError& e) {
      std::cout << "Model: none (" << e.what() << ")\n";
    }
  }
  return 0;
}

}  // namespace bitrun::cli
