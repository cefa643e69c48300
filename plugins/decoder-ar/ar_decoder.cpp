#include "ar_decoder.hpp"

#include <algorithm>

#include "bitrun/base/error.hpp"

namespace bitrun::ar {

ArSession::ArSession(const DecodeRequest& request) : request_(request), sampler_(request.sampling) {
  if (request.prompt.empty()) throw Error("the prompt is empty (at least BOS is needed)");
  if (request.max_tokens < 1) throw Error("max_tokens must be at least 1");
  if (request.context_size <= 0) throw Error("context size must be positive");
  if (request.logprobs > 20) throw Error("at most 20 top logprobs can be returned");
  if (!request.decoder_options.empty())
    throw ConfigError("decoder 'ar' has no option '" + request.decoder_options.begin()->first + "'");
  if (static_cast<std::int64_t>(request.prompt.size()) >= request.context_size)
    throw Error("the prompt has " + std::to_string(request.prompt.size()) + " tokens; the context holds " +
                std::to_string(request.context_size) + " and one more is needed to generate");
  history_ = request.prompt;
}

StepRequest ArSession::next_step() {
  StepRequest step;
  step.attention = StepAttention::Causal;
  step.logit_rows = {0};
  if (!prefilled_) {
    step.tokens = history_;
    step.position = 0;
    step.logit_rows = {static_cast<std::int32_t>(history_.size() - 1)};
  } else {
    step.tokens = {history_.back()};
    step.position = static_cast<std::int32_t>(history_.size() - 1);
  }
  return step;
}

std::vector<std::int32_t> ArSession::consume(const StepLogits& logits) {
  prefilled_ = true;
  const SampledToken next = sampler_.sample(logits.row(0), history_);
  const auto& ends = request_.end_tokens;
  if (std::find(ends.begin(), ends.end(), next.id) != ends.end()) {
    finish_ = FinishReason::Stop;   // end-of-generation tokens finish the sequence and are not emitted
    return {};
  }
  history_.push_back(next.id);
  ++generated_;
  logprobs_.clear();
  if (request_.logprobs >= 0) logprobs_.push_back(token_logprob(logits.row(0), next.id, request_.logprobs));
  if (generated_ >= request_.max_tokens || static_cast<std::int64_t>(history_.size()) >= request_.context_size)
    finish_ = FinishReason::Length;
  return {next.id};
}

std::unique_ptr<DecodeSession> ArDecoder::start(const DecodeRequest& request) {
  return std::make_unique<ArSession>(request);
}

}  // namespace bitrun::ar
