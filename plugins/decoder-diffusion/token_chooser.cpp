#include "token_chooser.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace bitrun::diffusion {

TokenChooser::TokenChooser(const SamplingParams& sampling, std::int32_t mask_token, bool with_entropy)
    : sampler_(sampling), mask_token_(mask_token), with_entropy_(with_entropy) {}

std::span<const float> TokenChooser::without_mask(std::span<const float> logits) {
  work_.assign(logits.begin(), logits.end());
  work_[static_cast<std::size_t>(mask_token_)] = -std::numeric_limits<float>::infinity();
  return work_;
}

Prediction TokenChooser::choose(std::span<const float> logits, std::span<const std::int32_t> history) {
  const std::span<const float> row = without_mask(logits);
  const SampledToken t = sampler_.sample(row, history);
  Prediction p{t.id, t.probability, 0.0f};
  if (with_entropy_) p.entropy = entropy_of(row);
  return p;
}

TokenLogprob TokenChooser::logprob(std::span<const float> logits, std::int32_t token, std::int32_t top) {
  return token_logprob(without_mask(logits), token, top);
}

float entropy_of(std::span<const float> logits) {
  const float max = *std::max_element(logits.begin(), logits.end());
  double z = 0.0, weighted = 0.0;   // sum e^(l-max), sum e^(l-max) (l-max)
  for (float l : logits) {
    if (!std::isfinite(l)) continue;
    const double d = static_cast<double>(l) - max, e = std::exp(d);
    z += e;
    weighted += e * d;
  }
  // H = -sum p (d - log z) = log z - weighted / z
  return static_cast<float>(std::max(0.0, std::log(z) - weighted / z));
}

}  // namespace bitrun::diffusion
