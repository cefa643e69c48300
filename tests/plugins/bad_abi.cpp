// Test plugin: a backend built against the previous plugin ABI (before descriptors carried settings). The host
// must refuse it by its version number without calling anything else.
#include <cstdlib>
#include <memory>

#include "bitrun/plugin/backend.hpp"
#include "bitrun/plugin/plugin_abi.hpp"

namespace {
std::uint32_t wrong_abi_version() { return bitrun::kPluginAbiVersion - 1; }
const bitrun::PluginDescriptor& descriptor() {
  static const bitrun::PluginDescriptor d{bitrun::PluginKind::Backend, "bad-abi", "0.0.0", "test", 0, nullptr,
                                          nullptr, 0};
  return d;
}
std::unique_ptr<bitrun::Backend> create(const bitrun::BackendOptions&) { std::abort(); }
}  // namespace

BOOST_DLL_ALIAS(wrong_abi_version, bitrun_plugin_abi_version)
BOOST_DLL_ALIAS(descriptor, bitrun_plugin_descriptor)
BOOST_DLL_ALIAS(create, bitrun_create_backend)
