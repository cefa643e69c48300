// Test decoder "slow": after sleeping `delay_ms` (its own config key decoder.delay_ms, default 20, or a request's
// decoder option delay_ms) each step, emits the prompt's tokens over and over
// (one per step), re-decoding position 0 so it never runs out of context. It lets the server tests hold requests in flight for as long as they need
// (queue full, timeout, client disconnect) without depending on the model's speed.
#include <chrono>
#include <string>
#include <thread>

#include "bitrun/config/config.hpp"
#include "bitrun/plugin/decoder.hpp"
#include "bitrun/base/error.hpp"
#include "bitrun/plugin/plugin_abi.hpp"

namespace {

class SlowSession : public bitrun::DecodeSession {
 public:
  SlowSession(const bitrun::DecodeRequest& r, int delay_ms) : request_(r), delay_(delay_ms) {}
  bitrun::StepRequest next_step() override {
    bitrun::StepRequest s;
    s.tokens = {request_.prompt.front()};
    s.position = 0;
    s.logit_rows = {0};
    return s;
  }
  std::vector<std::int32_t> consume(const bitrun::StepLogits&) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_));
    const std::int32_t token = request_.prompt[static_cast<std::size_t>(generated_) % request_.prompt.size()];
    if (++generated_ >= request_.max_tokens) finish_ = bitrun::FinishReason::Length;
    return {token};
  }
  bitrun::FinishReason finished() const override { return finish_; }

 private:
  bitrun::DecodeRequest request_;
  int delay_;
  std::int32_t generated_ = 0;
  bitrun::FinishReason finish_ = bitrun::FinishReason::None;
};

class SlowDecoder : public bitrun::Decoder {
 public:
  explicit SlowDecoder(int delay_ms) : delay_ms_(delay_ms) {}
  std::string name() const override { return "slow"; }
  std::unique_ptr<bitrun::DecodeSession> start(const bitrun::DecodeRequest& r) override {
    int delay = delay_ms_;
    for (const auto& [key, value] : r.decoder_options) {
      if (key != "delay_ms") throw bitrun::ConfigError("decoder 'slow' has no option '" + key + "'");
      try {
        delay = std::stoi(value);
      } catch (const std::exception&) {
        throw bitrun::ConfigError("decoder 'slow': delay_ms must be an integer, got '" + value + "'");
      }
    }
    if (r.prompt.empty()) throw bitrun::Error("the prompt is empty");
    return std::make_unique<SlowSession>(r, delay);
  }

 private:
  int delay_ms_;
};

const bitrun::PluginSetting kSettings[] = {
    {"decoder.delay_ms", bitrun::ConfigType::Int, "20", "test decoder slow: milliseconds each step sleeps", nullptr,
     0.0, 60000.0, nullptr, false},
};

const bitrun::PluginDescriptor& descriptor() {
  static const bitrun::PluginDescriptor d{bitrun::PluginKind::Decoder, "slow", "0.0.1",
                                          "test decoder: one fixed token per step, slowly", 0, nullptr, kSettings,
                                          std::size(kSettings)};
  return d;
}

std::unique_ptr<bitrun::Decoder> create_decoder(const bitrun::Config& config) {
  return std::make_unique<SlowDecoder>(static_cast<int>(config.get_int("decoder.delay_ms")));
}

}  // namespace

BITRUN_PLUGIN_ABI_EXPORT(descriptor)
BOOST_DLL_ALIAS(create_decoder, bitrun_create_decoder)
