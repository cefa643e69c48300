// The token sampling chain shared by the decoders: penalties, then greedy or (top-k -> temperature softmax ->
// top-p -> min-p -> draw). Seeded and reproducible: the same seed, logits and history give the same tokens.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "bitrun/plugin/decoder.hpp"

namespace bitrun {

struct SampledToken {
  std::int32_t id = -1;
  float probability = 0.0f;   // in the final distribution it was drawn from (softmax at T=1 for greedy)
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);

  // `history` is every token the sequence holds (prompt and generated); penalties look at its last
  // penalty_last_n entries.
  SampledToken sample(std::span<const float> logits, std::span<const std::int32_t> history);

  const SamplingParams& params() const { return params_; }

 private:
  void apply_penalties(std::vector<float>& logits, std::span<const std::int32_t> history) const;

  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<float> work_;
  std::vector<std::int32_t> order_;
};

class Config;

// SamplingParams from the config's sampling.* keys; sampling.seed -1 draws a fresh seed.
SamplingParams sampling_params_from_config(const Config& config);

// sum_i e^(values[i] - top) for top >= every value: the softmax normaliser relative to its maximum, vectorized;
// each term within 2.4e-7 relative of e^x, terms below e^-87 (-inf entries too) under FLT_MIN, the sum in double.
double sum_exp_below(std::span<const float> values, float top);

// log(sum(exp(logits))), computed stably (sum_exp_below): the normaliser of the model's distribution.
double log_sum_exp(std::span<const float> logits);

// The log-softmax of `logits` at `token`, and the `top` most likely tokens with theirs (best first).
TokenLogprob token_logprob(std::span<const float> logits, std::int32_t token, std::int32_t top);

// Index of the largest logit (the lowest index among equal maxima).
std::int32_t argmax(std::span<const float> logits);

}  // namespace bitrun
