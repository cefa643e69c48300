// The decoder plugins a server uses, by name: created on first use from the plugin host with the config's
// decoder.* settings and kept. start() may be called from many threads (it serialises session creation, so a
// decoder plugin need not be thread-safe).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "bitrun/plugin/decoder.hpp"

namespace bitrun {

class Config;
class PluginHost;

class DecoderSet {
 public:
  // Creates `default_name` now, so a bad default fails at startup rather than on the first request.
  DecoderSet(const PluginHost& host, const Config& config, std::string default_name);

  const std::string& default_name() const { return default_; }
  // A session of decoder `name` ("" = the default) for `request`. Throws Error when no usable decoder plugin has
  // that name (the message lists those that exist), and whatever Decoder::start throws for a bad request
  // (ConfigError for decoder_options it does not accept).
  std::unique_ptr<DecodeSession> start(std::string_view name, const DecodeRequest& request);

 private:
  Decoder& get(const std::string& name);
  const PluginHost& host_;
  const Config& config_;
  std::string default_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Decoder>, std::less<>> decoders_;
};

}  // namespace bitrun
