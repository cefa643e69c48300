#include "bitrun/plugin/plugin_host.hpp"

#include <boost/dll/shared_library.hpp>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <system_error>
#include <unistd.h>

#include "bitrun/config/config.hpp"
#include "bitrun/base/error.hpp"
#include "bitrun/base/log.hpp"

namespace bitrun {

struct PluginHost::Library {
  boost::dll::shared_library lib;
};

namespace {

// Every library ever opened, never destroyed: unloading code whose objects may still be alive (backends, OpenMP
// pools, spdlog formatters) is undefined behaviour, so plugins stay mapped until the process exits.
std::vector<std::unique_ptr<PluginHost::Library>>& open_libraries() { static auto* libs = new std::vector<std::unique_ptr<PluginHost::Library>>(); return *libs; }
std::mutex& open_libraries_mutex() { static std::mutex m; return m; }

std::filesystem::path executable_dir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path{} : exe.parent_path();
}

bool is_plugin_file(const std::filesystem::directory_entry& entry) {
  if (!entry.is_regular_file()) return false;
  std::string name = entry.path().filename().string();
  return name.size() > kPluginFilePrefix.size() + kPluginFileSuffix.size() &&
         name.compare(0, kPluginFilePrefix.size(), kPluginFilePrefix) == 0 &&
         name.compare(name.size() - kPluginFileSuffix.size(), kPluginFileSuffix.size(), kPluginFileSuffix) == 0;
}

const char* factory_symbol(PluginKind kind) {
  switch (kind) {
    case PluginKind::Backend: return "bitrun_create_backend";
    case PluginKind::Decoder: return "bitrun_create_decoder";
    case PluginKind::Frontend: return "bitrun_create_frontend";
  }
  return "";
}

}  // namespace

const char* plugin_kind_name(PluginKind kind) {
  switch (kind) {
    case PluginKind::Backend: return "backend";
    case PluginKind::Decoder: return "decoder";
    case PluginKind::Frontend: return "frontend";
  }
  return "unknown";
}

std::string PluginRecord::skip_reason(const CpuInfo& cpu) const {
  if (!error.empty()) return error;
  if (!shadowed_by.empty()) return "shadowed by " + shadowed_by;
  if (kind == PluginKind::Backend && score <= 0) {
    CpuFeatureMask missing = required_features & ~cpu.features;
    return missing ? "CPU lacks " + cpu_feature_list(missing) : "plugin reports it cannot run on this CPU";
  }
  return {};
}

CpuInfo effective_cpu(const Config& config) {
  CpuFeatureMask disabled = 0;
  for (const auto& name : config.get_string_list("cpu.disable")) {
    auto feature = cpu_feature_from_name(name);
    if (!feature)
      throw ConfigError(config.origin_of("cpu.disable") + ": key 'cpu.disable': unknown CPU feature '" + name +
                        "' (known: " + cpu_feature_list(~CpuFeatureMask{0}) + ")");
    disabled |= feature_bit(*feature);
  }
  return detect_cpu().without(disabled);
}

std::vector<std::filesystem::path> PluginHost::search_path(const Config& config) {
  std::vector<std::filesystem::path> dirs;
  if (auto dir = config.get_string("plugins.dir"); !dir.empty()) dirs.emplace_back(dir);
  if (const char* env = std::getenv(kEnvPluginPath)) {
    std::istringstream in(env);
    for (std::string part; std::getline(in, part, ':');)
      if (!part.empty()) dirs.emplace_back(part);
  }
  // BITRUN_PLUGIN_RELDIR is "../lib/bitrun/plugins" (or with the multiarch libdir), set by CMake.
  if (auto exe = executable_dir(); !exe.empty()) dirs.push_back((exe / BITRUN_PLUGIN_RELDIR).lexically_normal());
  return dirs;
}

PluginHost::PluginHost(std::vector<std::filesystem::path> search_dirs, CpuInfo cpu)
    : dirs_(std::move(search_dirs)), cpu_(std::move(cpu)) {
  discover();
}

PluginHost::~PluginHost() = default;

std::string PluginHost::searched_dirs() const {
  std::string searched;
  for (const auto& d : dirs_) searched += (searched.empty() ? "" : ", ") + d.string();
  return searched;
}

void PluginHost::discover() {
  auto log = logger("plugin-host");
  auto schema = std::make_shared<ConfigSchema>(*core_config_schema());
  const std::string searched = searched_dirs();
  schema->unknown_key_hint = "keys beyond the core's come from the plugins found in " +
                             (searched.empty() ? std::string("no directory") : searched) + " (see `bitrun info`)";
  for (const auto& dir : dirs_) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
      log->debug("plugin directory {} does not exist", dir.string());
      continue;
    }
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
      if (is_plugin_file(entry)) files.push_back(entry.path());
    std::sort(files.begin(), files.end());

    for (const auto& file : files) {
      PluginRecord record;
      record.file = file;
      const Library* library = nullptr;
      try {
        auto owned = std::make_unique<Library>();
        // rtld_now: an unresolved symbol fails here, not in the middle of a request. rtld_local: one plugin's
        // symbols never satisfy another's.
        owned->lib.load(boost::dll::fs::path(file.string()),
                        boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
        if (!owned->lib.has("bitrun_plugin_abi_version"))
          throw Error("missing entry point 'bitrun_plugin_abi_version' (not a bitrun plugin?)");
        std::uint32_t abi = owned->lib.get_alias<std::uint32_t()>("bitrun_plugin_abi_version")();
        if (abi != kPluginAbiVersion)
          throw Error("plugin ABI version " + std::to_string(abi) + ", this bitrun needs " +
                      std::to_string(kPluginAbiVersion) + " (rebuild the plugin with this bitrun)");
        if (!owned->lib.has("bitrun_plugin_descriptor"))
          throw Error("missing entry point 'bitrun_plugin_descriptor'");
        const PluginDescriptor& d = owned->lib.get_alias<const PluginDescriptor&()>("bitrun_plugin_descriptor")();
        if (d.kind != PluginKind::Backend && d.kind != PluginKind::Decoder && d.kind != PluginKind::Frontend)
          throw Error("unknown plugin kind " + std::to_string(static_cast<std::uint32_t>(d.kind)));
        if (!d.name || !*d.name) throw Error("descriptor has no name");
        if (!owned->lib.has(factory_symbol(d.kind)))
          throw Error(std::string("missing entry point '") + factory_symbol(d.kind) + "'");
        record.kind = d.kind;
        record.name = d.name;
        record.version = d.version ? d.version : "";
        record.description = d.description ? d.description : "";
        record.required_features = d.required_features;
        // The score runs code from a TU built without ISA flags, so it is safe on any CPU.
        record.score = d.score ? d.score(cpu_.features) : score_if_runnable(cpu_.features, d.required_features, 1);
        if (d.setting_count && !d.settings) throw Error("descriptor lists settings but has none");
        for (std::size_t i = 0; i < d.setting_count; ++i)
          record.settings.push_back(config_key_of(d.settings[i], "plugin '" + record.name + "'"));

        std::lock_guard<std::mutex> lock(open_libraries_mutex());
        open_libraries().push_back(std::move(owned));
        library = open_libraries().back().get();
      } catch (const std::system_error& e) {   // dlopen failure: Boost.DLL reports the dlerror text
        record.error = std::string("cannot load: ") + e.what();
      } catch (const std::exception& e) {
        record.error = e.what();
      }
      if (record.error.empty() && !find(record.kind, record.name)) {
        // Its keys join the schema only as a whole: a clash leaves the plugin out, not half of its keys in.
        ConfigSchema trial = *schema;
        try {
          for (const auto& key : record.settings) trial.add(key);
          *schema = std::move(trial);
        } catch (const ConfigError& e) {
          record.error = e.what();
        }
      }
      if (!record.error.empty()) {
        log->warn("skipping plugin {}: {}", file.string(), record.error);
      } else if (const PluginRecord* earlier = find(record.kind, record.name)) {
        record.shadowed_by = earlier->file.string();
      } else {
        log->debug("found {} plugin '{}' {} in {} (score {})", plugin_kind_name(record.kind), record.name,
                   record.version, file.string(), record.score);
      }
      records_.push_back(std::move(record));
      libraries_.push_back(library);
    }
  }
  schema_ = std::move(schema);
}

const PluginRecord* PluginHost::find(PluginKind kind, std::string_view name) const {
  for (const auto& r : records_)
    if (r.usable() && r.kind == kind && r.name == name) return &r;
  return nullptr;
}

const PluginHost::Library& PluginHost::library_of(const PluginRecord& record) const {
  auto index = static_cast<std::size_t>(&record - records_.data());
  return *libraries_.at(index);
}

BackendChoice PluginHost::choose_backend(std::string_view requested) const {
  if (requested == kReferenceBackendName)
    return BackendChoice{std::string(kReferenceBackendName), nullptr, "requested"};

  if (requested == "auto") {
    const PluginRecord* best = nullptr;
    for (const auto& r : records_)
      if (r.usable() && r.kind == PluginKind::Backend && r.score > 0 && (!best || r.score > best->score)) best = &r;
    if (!best)
      return BackendChoice{std::string(kReferenceBackendName), nullptr,
                           "no backend plugin can run on this CPU; using the scalar reference backend"};
    return BackendChoice{best->name, best, "highest score (" + std::to_string(best->score) + ") on this CPU"};
  }

  const PluginRecord* forced = find(PluginKind::Backend, requested);
  if (!forced) {
    std::string available(kReferenceBackendName);
    for (const auto& r : records_)
      if (r.usable() && r.kind == PluginKind::Backend) available += ", " + r.name;
    const std::string searched = searched_dirs();
    throw Error("backend '" + std::string(requested) + "' not found (available: " + available +
                "; searched: " + (searched.empty() ? "nothing" : searched) + ")");
  }
  if (forced->score <= 0)
    throw Error("backend '" + forced->name + "' cannot run on this CPU: " + forced->skip_reason(cpu_) +
                " (needs " + cpu_feature_list(forced->required_features) + ")");
  return BackendChoice{forced->name, forced, "forced by configuration"};
}

std::unique_ptr<Backend> PluginHost::create_backend(const BackendChoice& choice, int threads) const {
  BackendOptions options{threads, cpu_};
  if (!choice.plugin) return make_reference_backend(options);
  auto& create = library_of(*choice.plugin).lib.get_alias<CreateBackendFn>(factory_symbol(PluginKind::Backend));
  auto backend = create(options);
  if (!backend) throw Error("plugin " + choice.plugin->file.string() + " returned no backend");
  return backend;
}

std::unique_ptr<Decoder> PluginHost::create_decoder(std::string_view name, const Config& config) const {
  const PluginRecord* r = find(PluginKind::Decoder, name);
  if (!r) throw Error("decoder '" + std::string(name) + "' not found among the plugins (see `bitrun info`)");
  auto& create = library_of(*r).lib.get_alias<CreateDecoderFn>(factory_symbol(PluginKind::Decoder));
  return create(config);
}

std::unique_ptr<Frontend> PluginHost::create_frontend(std::string_view name, const Config& config) const {
  const PluginRecord* r = find(PluginKind::Frontend, name);
  if (!r) throw Error("frontend '" + std::string(name) + "' not found among the plugins (see `bitrun info`)");
  auto& create = library_of(*r).lib.get_alias<CreateFrontendFn>(factory_symbol(PluginKind::Frontend));
  return create(config);
}

}  // namespace bitrun
