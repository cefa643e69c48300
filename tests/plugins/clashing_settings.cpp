// Test plugin: a decoder whose settings claim a key the core already has (decoder.type). The host must leave it
// out, naming the key and who owns it, and keep every other plugin's keys.
#include <iterator>
#include <memory>

#include "bitrun/plugin/decoder.hpp"
#include "bitrun/plugin/plugin_abi.hpp"

namespace {
const bitrun::PluginSetting kSettings[] = {
    {"clash.fine", bitrun::ConfigType::Int, "1", "a key nobody else has", nullptr, bitrun::kUnbounded,
     bitrun::kUnbounded, nullptr, false},
    {"decoder.type", bitrun::ConfigType::String, "clash", "the core's key", nullptr, bitrun::kUnbounded,
     bitrun::kUnbounded, nullptr, false},
};
const bitrun::PluginDescriptor& descriptor() {
  static const bitrun::PluginDescriptor d{bitrun::PluginKind::Decoder, "clash", "0.0.0", "test", 0, nullptr,
                                          kSettings, std::size(kSettings)};
  return d;
}
std::unique_ptr<bitrun::Decoder> create(const bitrun::Config&) { return nullptr; }
}  // namespace

BITRUN_PLUGIN_ABI_EXPORT(descriptor)
BOOST_DLL_ALIAS(create, bitrun_create_decoder)
