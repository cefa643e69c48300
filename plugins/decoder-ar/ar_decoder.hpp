// Autoregressive decoding as a step-wise policy: one prefill step over the whole prompt, then one token per step.
// Sampling (greedy, temperature, top-k/p, min-p, penalties, seed) is the core's Sampler.
#pragma once

#include "bitrun/plugin/decoder.hpp"
#include "bitrun/engine/sampler.hpp"

namespace bitrun::ar {

class ArSession final : public DecodeSession {
 public:
  explicit ArSession(const DecodeRequest& request);
  StepRequest next_step() override;
  std::vector<std::int32_t> consume(const StepLogits& logits) override;
  FinishReason finished() const override { return finish_; }
  std::vector<TokenLogprob> take_logprobs() override { return std::move(logprobs_); }

 private:
  DecodeRequest request_;
  Sampler sampler_;
  std::vector<std::int32_t> history_;   // prompt followed by every generated token
  std::int32_t generated_ = 0;
  bool prefilled_ = false;
  FinishReason finish_ = FinishReason::None;
  std::vector<TokenLogprob> logprobs_;
};

class ArDecoder final : public Decoder {
 public:
  std::string name() const override { return "ar"; }
  std::unique_ptr<DecodeSession> start(const DecodeRequest& request) override;
};

}  // namespace bitrun::ar
