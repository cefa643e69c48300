// Plugin entry points of the block-diffusion decoder.
#include "bitrun/config/config.hpp"
#include "bitrun/plugin/plugin_abi.hpp"
#include "diffusion_session.hpp"
#include "diffusion_settings.hpp"

namespace bitrun::diffusion {

class DiffusionDecoder final : public Decoder {
 public:
  explicit DiffusionDecoder(Settings settings) : settings_(settings) {}
  std::string name() const override { return "diffusion"; }
  std::vector<std::string> modes() const override { return mode_names(); }
  std::unique_ptr<DecodeSession> start(const DecodeRequest& request) override {
    return std::make_unique<DiffusionSession>(request, with_request_options(settings_, request.decoder_options));
  }

 private:
  Settings settings_;
};

const PluginDescriptor& descriptor() {
  static const PluginDescriptor d{PluginKind::Decoder, "diffusion", "0.1.0",
                                  "block diffusion (Fast-dLLM v2 block-causal or causal contract): greedy, iterative, "
                                  "adaptive, factor and entropy-bounded unmasking",
                                  0, nullptr, setting_table().data(), setting_table().size()};
  return d;
}

std::unique_ptr<Decoder> create_decoder(const Config& config) {
  return std::make_unique<DiffusionDecoder>(settings_from_config(config));
}

}  // namespace bitrun::diffusion

BITRUN_PLUGIN_ABI_EXPORT(bitrun::diffusion::descriptor)
BOOST_DLL_ALIAS(bitrun::diffusion::create_decoder, bitrun_create_decoder)
