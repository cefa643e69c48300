// The token a diffusion step proposes for one position, with its confidence: the core Sampler (argmax at
// temperature 0, else temperature / top-k / top-p / min-p and a seeded draw) over the row's logits with the mask
// token excluded, so MASK is never proposed. Confidence is the chosen token's probability in the distribution it
// was drawn from (softmax at temperature 1 for argmax), as Fast-dLLM v2 gathers it.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "bitrun/plugin/decoder.hpp"
#include "bitrun/engine/sampler.hpp"

namespace bitrun::diffusion {

struct Prediction {
  std::int32_t token = 0;
  float confidence = 0.0f;
  float entropy = 0.0f;   // of the model's distribution (temperature 1, without the mask token), when asked for
};

class TokenChooser {
 public:
  TokenChooser(const SamplingParams& sampling, std::int32_t mask_token, bool with_entropy);

  // `history`: the final tokens so far (for the sampler's repetition penalties).
  Prediction choose(std::span<const float> logits, std::span<const std::int32_t> history);
  // The row's log-probabilities without the mask token: `token`'s and the `top` best alternatives.
  TokenLogprob logprob(std::span<const float> logits, std::int32_t token, std::int32_t top);

 private:
  std::span<const float> without_mask(std::span<const float> logits);
  Sampler sampler_;
  std::int32_t mask_token_;
  bool with_entropy_;
  std::vector<float> work_;
};

// Entropy (nats) of softmax(logits); -inf logits take no part.
float entropy_of(std::span<const float> logits);

}  // namespace bitrun::diffusion
