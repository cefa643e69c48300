// Block-diffusion decoding of one sequence as a step-wise policy (Fast-dLLM v2; docs/models.md). Positions
// are generated block by block; inside a block, sub-blocks left to right, each step predicting every masked
// position of the current sub-block (output row j-1 predicts position j) and unmasking some by the mode's rule.
//
// Block-causal contract (Fast-dLLM v2): blocks sit at absolute multiples of B. The prompt's whole blocks are
// prefilled block-causally; when the prompt fills whole blocks, the last prefill row predicts the first new token,
// else the first step computes the prompt blocks and the current block together. Each step runs the whole current
// block bidirectionally (or, with the sub-block cache, only the sub-block against the block's kept K/V while the
// sub-block's first token is known). A full block is committed: re-run with its final tokens so the cache holds
// exact K/V; its last row predicts the next block's first token.
//
// Causal contract (WrinkleFree): blocks start where generation starts; attention is causal, so a step feeds only
// the rows up to the last masked position it predicts, starting at the first position whose cached K/V were
// computed from a MASK input (which keeps the cache exact without a commit pass).
//
// Tokens are returned as soon as they and every position before them are final; an end token stops the request
// (not emitted, no commit); max_tokens and the context end it exactly, even mid-block; prompt positions are never
// overwritten; the mask token is never proposed.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "bitrun/plugin/decoder.hpp"
#include "diffusion_settings.hpp"
#include "token_chooser.hpp"

namespace bitrun::diffusion {

class DiffusionSession final : public DecodeSession {
 public:
  // Throws Error when the request cannot run (no mask token, prompt too long, unshifted logits, ...).
  DiffusionSession(const DecodeRequest& request, const Settings& settings);

  StepRequest next_step() override;
  std::vector<std::int32_t> consume(const StepLogits& logits) override;
  std::vector<TokenLogprob> take_logprobs() override { return std::move(logprobs_); }
  FinishReason finished() const override { return finish_; }

 private:
  enum class Next { Prefill, Block, Commit };

  void open_block(std::int32_t start);
  // Masked positions of the current sub-block that may still be generated (below the length limit).
  std::vector<std::int32_t> competing();
  StepRequest plan_block_causal();
  StepRequest plan_causal(const std::vector<std::int32_t>& targets);
  void place(std::int32_t position, std::int32_t token, std::span<const float> logits);
  // Appends the final tokens from emit_pos_ on to `out`; sets finish_ at an end token, max_tokens or the context end.
  void emit(std::vector<std::int32_t>& out);
  bool block_complete() const;

  DecodeRequest request_;
  Settings settings_;
  DiffusionAttention contract_ = DiffusionAttention::BlockCausal;
  std::int32_t mask_ = -1, block_ = 32, sub_block_ = 8, prompt_len_ = 0, context_ = 0;
  std::int64_t length_limit_ = 0;          // positions below it may be generated: min(context, prompt + max_tokens)
  TokenChooser chooser_;

  std::vector<std::int32_t> tokens_;       // prompt, final tokens and the current block (mask where unknown)
  std::vector<bool> known_;
  std::int32_t block_start_ = 0, block_end_ = 0;
  std::int32_t committed_ = 0;             // leading positions whose cached K/V came from their final tokens
  std::int32_t emit_pos_ = 0;              // next position to return
  std::int32_t generated_ = 0;
  Next next_ = Next::Block;
  std::int32_t sub_index_ = -1;            // current sub-block of the block
  std::int32_t sub_iterations_ = 0, block_iterations_ = 0;
  bool block_kv_kept_ = false;             // a full forward of this block wrote its K/V (sub-block cache)

  // The step in flight: positions its logit rows predict, and (causal) the first position it fed as MASK.
  std::vector<std::int32_t> targets_;
  std::int32_t first_masked_fed_ = 0;
  bool full_step_ = false;

  FinishReason finish_ = FinishReason::None;
  std::vector<std::optional<TokenLogprob>> position_logprobs_;   // when asked for: per position, at placement
  std::vector<TokenLogprob> logprobs_;
};

}  // namespace bitrun::diffusion
