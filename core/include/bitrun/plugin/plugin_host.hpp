// Plugin host: finds plugin .so files, checks their ABI, reads their descriptors, and creates backends, decoders
// and frontends from them. Loaded libraries stay loaded until the process exits (objects, vtables and OpenMP
// thread pools from a plugin must never outlive its code).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bitrun/plugin/backend.hpp"
#include "bitrun/config/config.hpp"
#include "bitrun/base/cpu_features.hpp"
#include "bitrun/plugin/decoder.hpp"
#include "bitrun/plugin/frontend.hpp"
#include "bitrun/plugin/plugin_abi.hpp"

namespace bitrun {

// Plugin files are named bitrun-<kind>-<name>.so; anything else in a search directory is ignored.
inline constexpr std::string_view kPluginFilePrefix = "bitrun-";
inline constexpr std::string_view kPluginFileSuffix = ".so";
// The built-in scalar backend, always available.
inline constexpr std::string_view kReferenceBackendName = "reference";

struct PluginRecord {
  std::filesystem::path file;
  std::string error;              // non-empty: the file could not be used (bad ABI, missing entry point, ...)
  PluginKind kind = PluginKind::Backend;
  std::string name, version, description;
  CpuFeatureMask required_features = 0;
  std::int32_t score = 0;         // on the CPU the host was given; 0 = cannot run here
  std::string shadowed_by;        // another file with the same kind and name was found earlier in the path
  std::vector<ConfigKey> settings;   // the configuration keys it adds

  bool usable() const { return error.empty() && shadowed_by.empty(); }
  std::string skip_reason(const CpuInfo& cpu) const;   // empty when runnable
};

struct BackendChoice {
  std::string name;
  const PluginRecord* plugin = nullptr;   // null for the built-in reference backend
  std::string reason;                     // "highest score", "forced by config (from <origin>)"
};

class PluginHost {
 public:
  // `cpu` decides scores; pass a masked CpuInfo to simulate another CPU.
  PluginHost(std::vector<std::filesystem::path> search_dirs, CpuInfo cpu);
  ~PluginHost();
  PluginHost(const PluginHost&) = delete;
  PluginHost& operator=(const PluginHost&) = delete;

  // plugins.dir (if set), then every entry of BITRUN_PLUGIN_PATH, then <exe dir>/../<libdir>/bitrun/plugins.
  static std::vector<std::filesystem::path> search_path(const Config& config);

  const std::vector<std::filesystem::path>& search_dirs() const { return dirs_; }
  const std::vector<PluginRecord>& plugins() const { return records_; }
  const CpuInfo& cpu() const { return cpu_; }
  const PluginRecord* find(PluginKind kind, std::string_view name) const;
  // The core's keys and those of every usable plugin found (whether or not it runs on this CPU, so a config
  // file stays valid across machines with the same plugins). A plugin whose keys clash with keys already taken
  // is not usable (its record says why).
  const std::shared_ptr<const ConfigSchema>& config_schema() const { return schema_; }

  // `requested` is "auto" (highest score wins) or a backend name; a forced backend that is missing or cannot run
  // on this CPU is an Error that says why.
  BackendChoice choose_backend(std::string_view requested) const;
  std::unique_ptr<Backend> create_backend(const BackendChoice& choice, int threads) const;

  std::unique_ptr<Decoder> create_decoder(std::string_view name, const Config& config) const;
  std::unique_ptr<Frontend> create_frontend(std::string_view name, const Config& config) const;

  struct Library;   // an opened plugin file (opaque; lives until the process exits)

 private:
  void discover();
  std::string searched_dirs() const;   // the search directories, comma-separated ("" when none)
  const Library& library_of(const PluginRecord& record) const;

  std::vector<std::filesystem::path> dirs_;
  CpuInfo cpu_;
  std::vector<PluginRecord> records_;
  std::shared_ptr<const ConfigSchema> schema_;
  std::vector<const Library*> libraries_;   // parallel to records_; owned by the process-wide registry
};

// The CPU the config allows: detect_cpu() minus the features listed in `cpu.disable`.
CpuInfo effective_cpu(const Config& config);

}  // namespace bitrun
