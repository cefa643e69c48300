#include "bitrun/engine/decoder_set.hpp"

#include "bitrun/base/error.hpp"
#include "bitrun/plugin/plugin_host.hpp"

namespace bitrun {

DecoderSet::DecoderSet(const PluginHost& host, const Config& config, std::string default_name)
    : host_(host), config_(config), default_(std::move(default_name)) {
  get(default_);
}

Decoder& DecoderSet::get(const std::string& name) {
  if (auto it = decoders_.find(name); it != decoders_.end()) return *it->second;
  if (!host_.find(PluginKind::Decoder, name)) {
    std::string known;
    for (const auto& r : host_.plugins())
      if (r.usable() && r.kind == PluginKind::Decoder) known += (known.empty() ? "" : ", ") + r.name;
    throw Error("decoder '" + name + "' is not available: no decoder plugin of that name is loaded (available: " +
                (known.empty() ? "none" : known) + ")");
  }
  auto decoder = host_.create_decoder(name, config_);
  if (!decoder) throw Error("decoder plugin '" + name + "' returned no decoder");
  return *decoders_.emplace(name, std::move(decoder)).first->second;
}

std::unique_ptr<DecodeSession> DecoderSet::start(std::string_view name, const DecodeRequest& request) {
  std::lock_guard lock(mu_);
  Decoder& decoder = get(name.empty() ? default_ : std::string(name));
  auto session = decoder.start(request);
  if (!session) throw Error("decoder '" + decoder.name() + "' returned no session");
  return session;
}

}  // namespace bitrun
