// Test plugin: has the right ABI version but no descriptor entry point.
#include "bitrun/plugin/plugin_abi.hpp"

namespace {
std::uint32_t abi_version() { return bitrun::kPluginAbiVersion; }
}  // namespace

BOOST_DLL_ALIAS(abi_version, bitrun_plugin_abi_version)
