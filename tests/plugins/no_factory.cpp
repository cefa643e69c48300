// Test plugin: a valid descriptor for a decoder, but no bitrun_create_decoder factory.
#include "bitrun/plugin/plugin_abi.hpp"

namespace {
const bitrun::PluginDescriptor& descriptor() {
  static const bitrun::PluginDescriptor d{bitrun::PluginKind::Decoder, "no-factory", "0.0.0", "test", 0, nullptr,
                                          nullptr, 0};
  return d;
}
}  // namespace

BITRUN_PLUGIN_ABI_EXPORT(descriptor)
