#include "diffusion_session.hpp"

#include <algorithm>

#include "bitrun/base/error.hpp"
#include "unmask_policy.hpp"

namespace bitrun::diffusion {
namespace {

// Validates what does not depend on the contract and returns the mask token to use.
std::int32_t checked_mask_token(const DecodeRequest& r, const Settings& s) {
  if (r.prompt.empty()) throw Error("the prompt is empty (at least BOS is needed)");
  if (r.max_tokens < 1) throw Error("max_tokens must be at least 1");
  if (r.context_size <= 0) throw Error("context size must be positive");
  if (r.logprobs > 20) throw Error("at most 20 top logprobs can be returned");
  if (r.model.vocab_size <= 0)
    throw Error("the request carries no model facts (DecodeRequest::model): build it with make_decode_request()");
  if (!r.model.diffusion.shift_logits)
    throw Error("the model has diffusion.shift_logits = false (row j predicts token j); the diffusion decoder "
                "implements shifted logits only (row j-1 predicts token j)");
  const std::int32_t mask = s.mask_token >= 0 ? s.mask_token : r.model.mask_token;
  if (mask < 0)
    throw Error("the model has no mask token (no tokenizer.ggml.mask_token_id, and `|<MASK>|` is not a single "
                "token): diffusion decoding needs one; set decoder.mask_token to designate a token id");
  if (mask >= r.model.vocab_size)
    throw ConfigError("decoder.mask_token " + std::to_string(mask) + " is outside the vocabulary of " +
                      std::to_string(r.model.vocab_size) + " tokens");
  if (static_cast<std::int64_t>(r.prompt.size()) >= r.context_size)
    throw Error("the prompt has " + std::to_string(r.prompt.size()) + " tokens; the context holds " +
                std::to_string(r.context_size) + " and one more is needed to generate");
  return mask;
}

}  // namespace

DiffusionSession::DiffusionSession(const DecodeRequest& request, const Settings& settings)
    : request_(request),
      settings_(settings),
      mask_(checked_mask_token(request, settings)),
      chooser_(request.sampling, mask_, settings.mode == Mode::EntropyBudget) {
  const DiffusionMetadata& meta = request.model.diffusion;
  contract_ = settings.attention != DiffusionAttention::Unspecified ? settings.attention
              : meta.attention != DiffusionAttention::Unspecified  ? meta.attention
                                                                    : DiffusionAttention::BlockCausal;
  block_ = settings.block_size > 0 ? settings.block_size : meta.block_size > 0 ? meta.block_size : 32;
  sub_block_ = std::min(settings.sub_block_size, block_);
  prompt_len_ = static_cast<std::int32_t>(request.prompt.size());
  context_ = request.context_size;
  length_limit_ = std::min<std::int64_t>(context_, std::int64_t{prompt_len_} + request.max_tokens);
  tokens_ = request.prompt;
  known_.assign(tokens_.size(), true);
  emit_pos_ = prompt_len_;
  if (contract_ == DiffusionAttention::BlockCausal) {
    // A prompt of whole blocks is prefilled and its last row predicts the next block's first token; otherwise the
    // prompt tail starts the current block.
    const std::int32_t tail = prompt_len_ % block_;
    open_block(prompt_len_ - tail);
    next_ = tail == 0 ? Next::Prefill : Next::Block;
  } else {
    open_block(prompt_len_);
    next_ = Next::Block;
  }
}

void DiffusionSession::open_block(std::int32_t start) {
  block_start_ = start;
  block_end_ = std::min(start + block_, context_);
  tokens_.resize(static_cast<std::size_t>(block_end_), mask_);
  known_.resize(static_cast<std::size_t>(block_end_), false);
  if (request_.logprobs >= 0) position_logprobs_.resize(static_cast<std::size_t>(block_end_));
  sub_index_ = -1;
  sub_iterations_ = block_iterations_ = 0;
  block_kv_kept_ = false;
}

std::vector<std::int32_t> DiffusionSession::competing() {
  for (std::int32_t k = 0; block_start_ + k * sub_block_ < block_end_; ++k) {
    const std::int32_t s0 = block_start_ + k * sub_block_, s1 = std::min(s0 + sub_block_, block_end_);
    std::vector<std::int32_t> positions;
    for (std::int32_t p = s0; p < s1 && p < length_limit_; ++p)
      if (!known_[static_cast<std::size_t>(p)]) positions.push_back(p);
    if (positions.empty()) continue;
    if (k != sub_index_) sub_index_ = k, sub_iterations_ = 0;
    return positions;
  }
  return {};
}

StepRequest DiffusionSession::next_step() {
  StepRequest step;
  full_step_ = false;
  if (next_ == Next::Prefill || next_ == Next::Commit) {
    // Prefill: the prompt's whole blocks. Commit: the finished block with its final tokens. Both block-causal,
    // and the last row predicts the first token of the block after them.
    const std::int32_t from = next_ == Next::Prefill ? 0 : block_start_;
    const std::int32_t to = next_ == Next::Prefill ? prompt_len_ : block_end_;
    step.tokens.assign(tokens_.begin() + from, tokens_.begin() + to);
    step.position = from;
    step.attention = StepAttention::BlockCausal;
    step.block_size = block_;
    step.logit_rows = {to - from - 1};
    targets_ = {to};
    return step;
  }
  targets_ = competing();
  if (targets_.empty())   // unreachable by construction (emit() finishes first); never loop without progress
    throw Error("diffusion decoder: no masked position left in the block at " + std::to_string(block_start_));
  step = contract_ == DiffusionAttention::BlockCausal ? plan_block_causal() : plan_causal(targets_);
  for (std::int32_t j : targets_) step.logit_rows.push_back(j - 1 - step.position);   // row j-1 predicts j
  return step;
}

StepRequest DiffusionSession::plan_block_causal() {
  StepRequest step;
  const std::int32_t s0 = block_start_ + sub_index_ * sub_block_, s1 = std::min(s0 + sub_block_, block_end_);
  if (settings_.sub_block_cache && block_kv_kept_ && known_[static_cast<std::size_t>(s0)]) {
    // Only the sub-block's rows, against the K/V the block's last full forward left in the cache.
    step.tokens.assign(tokens_.begin() + s0, tokens_.begin() + s1);
    step.position = s0;
    step.attention = StepAttention::Bidirectional;
    step.cached_until = block_end_;
    return step;
  }
  // The whole block; on the first step without a prefill also the prompt's whole blocks before it.
  step.tokens.assign(tokens_.begin() + committed_, tokens_.begin() + block_end_);
  step.position = committed_;
  step.attention = StepAttention::BlockCausal;
  step.block_size = block_;
  full_step_ = true;
  return step;
}

StepRequest DiffusionSession::plan_causal(const std::vector<std::int32_t>& targets) {
  // Causal rows after the last predicted position cannot influence it; rows before it start where the cache
  // stops being exact.
  StepRequest step;
  const std::int32_t from = std::min(committed_, targets.front() - 1), to = targets.back();
  step.tokens.assign(tokens_.begin() + from, tokens_.begin() + to);
  step.position = from;
  step.attention = StepAttention::Causal;
  first_masked_fed_ = to;
  for (std::int32_t p = from; p < to; ++p)
    if (!known_[static_cast<std::size_t>(p)]) {
      first_masked_fed_ = p;
      break;
    }
  return step;
}

void DiffusionSession::place(std::int32_t position, std::int32_t token, std::span<const float> logits) {
  tokens_[static_cast<std::size_t>(position)] = token;
  known_[static_cast<std::size_t>(position)] = true;
  if (request_.logprobs >= 0)
    position_logprobs_[static_cast<std::size_t>(position)] = chooser_.logprob(logits, token, request_.logprobs);
}

bool DiffusionSession::block_complete() const {
  return std::all_of(known_.begin() + block_start_, known_.begin() + block_end_, [](bool k) { return k; });
}

void DiffusionSession::emit(std::vector<std::int32_t>& out) {
  const auto& ends = request_.end_tokens;
  while (finish_ == FinishReason::None && emit_pos_ < block_end_ && known_[static_cast<std::size_t>(emit_pos_)]) {
    const std::int32_t token = tokens_[static_cast<std::size_t>(emit_pos_)];
    if (std::find(ends.begin(), ends.end(), token) != ends.end()) {
      finish_ = FinishReason::Stop;   // end tokens finish the request and are not emitted; the rest is cut
      break;
    }
    out.push_back(token);
    if (request_.logprobs >= 0) logprobs_.push_back(std::move(*position_logprobs_[static_cast<std::size_t>(emit_pos_)]));
    ++emit_pos_;
    if (++generated_ >= request_.max_tokens) finish_ = FinishReason::Length;
  }
  if (finish_ == FinishReason::None && emit_pos_ >= context_) finish_ = FinishReason::Length;
}

std::vector<std::int32_t> DiffusionSession::consume(const StepLogits& logits) {
  std::vector<std::int32_t> out;
  logprobs_.clear();
  const std::span<const std::int32_t> history(tokens_.data(), static_cast<std::size_t>(emit_pos_));
  if (next_ == Next::Prefill || next_ == Next::Commit) {
    // The first token of the next block, predicted AR-style by the last row: final at once.
    const Prediction p = chooser_.choose(logits.row(0), history);
    if (next_ == Next::Commit) {
      committed_ = block_end_;
      open_block(block_end_);
    } else {
      committed_ = prompt_len_;
    }
    place(targets_[0], p.token, logits.row(0));
    next_ = Next::Block;
    emit(out);
    return out;
  }

  ++sub_iterations_;
  ++block_iterations_;
  if (contract_ == DiffusionAttention::BlockCausal) {
    committed_ = block_start_;   // every step recomputes (or keeps) the exact prefix up to the block
    if (full_step_) block_kv_kept_ = true;
  } else {
    committed_ = first_masked_fed_;
  }
  std::vector<Candidate> candidates;
  for (std::size_t i = 0; i < targets_.size(); ++i) {
    const Prediction p = chooser_.choose(logits.row(i), history);
    candidates.push_back({targets_[i], p.token, p.confidence, p.entropy});
  }
  // At the iteration cap every competing position takes its current prediction, so MASK is never left behind.
  const bool fill_all = block_iterations_ >= settings_.max_iterations_per_block;
  for (std::size_t i : choose_unmasked(settings_, candidates, sub_iterations_, fill_all))
    place(candidates[i].position, candidates[i].token, logits.row(i));
  emit(out);
  if (finish_ == FinishReason::None && block_complete()) {
    if (contract_ == DiffusionAttention::BlockCausal) next_ = Next::Commit;
    else open_block(block_end_);
  }
  return out;
}

}  // namespace bitrun::diffusion
