// Plugin entry points of the autoregressive decoder.
#include "ar_decoder.hpp"
#include "bitrun/plugin/plugin_abi.hpp"

namespace bitrun::ar {

const PluginDescriptor& descriptor() {
  static const PluginDescriptor d{PluginKind::Decoder, "ar", "0.1.0",
                                  "autoregressive decoding: greedy and sampling (top-k/p, min-p, penalties, seed)", 0,
                                  nullptr, nullptr, 0};
  return d;
}

std::unique_ptr<Decoder> create_decoder(const Config&) { return std::make_unique<ArDecoder>(); }

}  // namespace bitrun::ar

BITRUN_PLUGIN_ABI_EXPORT(bitrun::ar::descriptor)
BOOST_DLL_ALIAS(bitrun::ar::create_decoder, bitrun_create_decoder)
