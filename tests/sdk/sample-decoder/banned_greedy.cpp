// Decoder "banned-greedy": greedy autoregressive decoding that never emits one token, set by its own configuration
// key sample.banned_token (-1 = none) or per request with the decoder option banned_token. A sample of a plugin
// built against the installed SDK: its descriptor declares the key, its factory reads it, its sessions decode.
#include <algorithm>
#include <iterator>
#include <memory>
#include <string>

#include "bitrun/base/error.hpp"
#include "bitrun/config/config.hpp"
#include "bitrun/plugin/decoder.hpp"
#include "bitrun/plugin/plugin_abi.hpp"

namespace {

class BannedGreedySession : public bitrun::DecodeSession {
 public:
  BannedGreedySession(const bitrun::DecodeRequest& r, std::int32_t banned) : request_(r), banned_(banned) {}

  bitrun::StepRequest next_step() override {
    bitrun::StepRequest step;
    if (generated_.empty()) {
      step.tokens = request_.prompt;   // the prompt, then one token a step
      step.position = 0;
    } else {
      step.tokens = {generated_.back()};
      step.position = static_cast<std::int32_t>(request_.prompt.size() + generated_.size() - 1);
    }
    step.logit_rows = {static_cast<std::int32_t>(step.tokens.size() - 1)};
    return step;
  }

  std::vector<std::int32_t> consume(const bitrun::StepLogits& logits) override {
    const auto row = logits.row(0);
    std::int32_t best = -1;
    for (std::int32_t t = 0; t < logits.vocab_size; ++t) {
      const auto at = [&](std::int32_t i) { return row[static_cast<std::size_t>(i)]; };
      if (t != banned_ && (best < 0 || at(t) > at(best))) best = t;
    }
    const auto& ends = request_.end_tokens;
    if (std::find(ends.begin(), ends.end(), best) != ends.end()) {
      finish_ = bitrun::FinishReason::Stop;
      return {};
    }
    generated_.push_back(best);
    const auto used = static_cast<std::int32_t>(request_.prompt.size() + generated_.size());
    if (static_cast<std::int32_t>(generated_.size()) >= request_.max_tokens || used >= request_.context_size)
      finish_ = bitrun::FinishReason::Length;
    return {best};
  }

  bitrun::FinishReason finished() const override { return finish_; }

 private:
  bitrun::DecodeRequest request_;
  std::int32_t banned_;
  std::vector<std::int32_t> generated_;
  bitrun::FinishReason finish_ = bitrun::FinishReason::None;
};

const bitrun::PluginSetting kSettings[] = {
    {"sample.banned_token", bitrun::ConfigType::Int, "-1",
     "decoder banned-greedy (a sample plugin): the token id it never emits; -1 = none", nullptr, -1.0, 2147483647.0,
     nullptr, false},
};

class BannedGreedyDecoder : public bitrun::Decoder {
 public:
  explicit BannedGreedyDecoder(std::int32_t banned) : banned_(banned) {}
  std::string name() const override { return "banned-greedy"; }
  std::unique_ptr<bitrun::DecodeSession> start(const bitrun::DecodeRequest& r) override {
    std::int32_t banned = banned_;
    for (const auto& [key, text] : r.decoder_options) {
      if (key != "banned_token") throw bitrun::ConfigError("decoder 'banned-greedy' has no option '" + key + "'");
      banned = static_cast<std::int32_t>(std::get<std::int64_t>(bitrun::parse_request_option(kSettings[0], key, text)));
    }
    if (r.prompt.empty()) throw bitrun::Error("the prompt is empty");
    if (r.model.vocab_size <= 0) throw bitrun::Error("decoder 'banned-greedy' was given no model facts");
    return std::make_unique<BannedGreedySession>(r, banned);
  }

 private:
  std::int32_t banned_;
};

const bitrun::PluginDescriptor& descriptor() {
  static const bitrun::PluginDescriptor d{bitrun::PluginKind::Decoder, "banned-greedy", "1.0.0",
                                          "sample out-of-tree decoder: greedy, never one token", 0, nullptr, kSettings,
                                          std::size(kSettings)};
  return d;
}

std::unique_ptr<bitrun::Decoder> create_decoder(const bitrun::Config& config) {
  return std::make_unique<BannedGreedyDecoder>(static_cast<std::int32_t>(config.get_int("sample.banned_token")));
}

}  // namespace

BITRUN_PLUGIN_ABI_EXPORT(descriptor)
BOOST_DLL_ALIAS(create_decoder, bitrun_create_decoder)
