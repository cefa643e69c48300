#include "bitrun/engine/sampler.hpp"

#include "bitrun/config/config.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <unordered_map>

namespace bitrun {

std::int32_t argmax(std::span<const float> logits) {
  return static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

namespace {

// e^x for x <= 0 (-inf included) in float and integer operations only, so that the compiler vectorizes a loop of it
// for the core's baseline ISA: x = n ln2 + r, |r| <= ln2 / 2, e^r by its Taylor series to r^6, times 2^n built in
// the exponent field. No float comparison: with trapping math GCC does not turn one into a select. Relative error
// at most 2.4e-7 (test_sampler.cpp); below -87 the result is 0 or under FLT_MIN.
inline float exp_nonpositive(float x) {
  std::uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  constexpr std::uint32_t kMinus87 = 0xC2AE0000u;   // as unsigned, a negative float of larger magnitude is larger
  bits = bits > kMinus87 ? kMinus87 : bits;
  std::memcpy(&x, &bits, sizeof x);
  const float n = (x * 1.44269504f + 12582912.0f) - 12582912.0f;   // x / ln2 rounded to nearest
  const float r = (x - n * 0.693145752f) - n * 1.42860677e-06f;     // ln 2 in two parts
  float p = 1.0f / 720;
  for (float c : {1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f}) p = p * r + c;
  const float biased = n + (127.0f + 8388608.0f);   // n + 127 in the low mantissa bits
  std::int32_t field;
  std::memcpy(&field, &biased, sizeof field);
  field = (field - 0x4B000000) << 23;
  float scale;
  std::memcpy(&scale, &field, sizeof scale);
  return p * scale;
}

}  // namespace

double sum_exp_below(std::span<const float> values, float top) {
  thread_local std::vector<float> terms;
  terms.resize(values.size());
  float* e = terms.data();
  const std::size_t n = values.size();
  for (std::size_t i = 0; i < n; ++i) e[i] = exp_nonpositive(values[i] - top);
  // Eight float partial sums per 64 terms (vectorized), then the 64-term sums in double.
  double sum = 0.0;
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    float lanes[8] = {};
    for (std::size_t k = 0; k < 64; k += 8)
      for (std::size_t j = 0; j < 8; ++j) lanes[j] += e[i + k + j];
    sum += static_cast<double>(((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
                               ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7])));
  }
  for (; i < n; ++i) sum += e[i];
  return sum;
}

double log_sum_exp(std::span<const float> logits) {
  const float max = *std::max_element(logits.begin(), logits.end());
  return max + std::log(sum_exp_below(logits, max));
}

TokenLogprob token_logprob(std::span<const float> logits, std::int32_t token, std::int32_t top) {
  const double log_z = log_sum_exp(logits);
  TokenLogprob out;
  out.token = token;
  out.logprob = static_cast<float>(logits[static_cast<std::size_t>(token)] - log_z);
  const auto n = static_cast<std::size_t>(std::clamp<std::int32_t>(top, 0, static_cast<std::int32_t>(logits.size())));
  std::vector<std::int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n), order.end(),
                    [&](std::int32_t a, std::int32_t b) { return logits[static_cast<std::size_t>(a)] > logits[static_cast<std::size_t>(b)]; });
  for (std::size_t i = 0; i < n; ++i)
    out.top.emplace_back(order[i], static_cast<float>(logits[static_cast<std::size_t>(order[i])] - log_z));
  return out;
}

SamplingParams sampling_params_from_config(const Config& config) {
  SamplingParams p;
  p.temperature = static_cast<float>(config.get_float("sampling.temperature"));
  p.top_k = static_cast<std::int32_t>(config.get_int("sampling.top_k"));
  p.top_p = static_cast<float>(config.get_float("sampling.top_p"));
  p.min_p = static_cast<float>(config.get_float("sampling.min_p"));
  p.repeat_penalty = static_cast<float>(config.get_float("sampling.repeat_penalty"));
  p.presence_penalty = static_cast<float>(config.get_float("sampling.presence_penalty"));
  p.frequency_penalty = static_cast<float>(config.get_float("sampling.frequency_penalty"));
  p.penalty_last_n = static_cast<std::int32_t>(config.get_int("sampling.penalty_last_n"));
  const std::int64_t seed = config.get_int("sampling.seed");
  p.seed = seed < 0 ? (static_cast<std::uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}()
                    : static_cast<std::uint64_t>(seed);
  return p;
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

void Sampler::apply_penalties(std::vector<float>& logits, std::span<const std::int32_t> history) const {
  const bool any = params_.repeat_penalty != 1.0f || params_.presence_penalty != 0.0f ||
                   params_.frequency_penalty != 0.0f;
  if (!any || params_.penalty_last_n == 0 || history.empty()) return;
  const std::size_t n = std::min(history.size(), static_cast<std::size_t>(params_.penalty_last_n));
  std::unordered_map<std::int32_t, int> counts;
  for (std::int32_t id : history.subspan(history.size() - n)) ++counts[id];
  for (const auto& [id, count] : counts) {
    if (id < 0 || static_cast<std::size_t>(id) >= logits.size()) continue;
    float& l = logits[static_cast<std::size_t>(id)];
    // llama.cpp convention: divide positive logits, multiply negative ones, so the penalty always lowers them.
    if (params_.repeat_penalty != 1.0f) l = l > 0.0f ? l / params_.repeat_penalty : l * params_.repeat_penalty;
    l -= static_cast<float>(count) * params_.frequency_penalty + params_.presence_penalty;
  }
}

SampledToken Sampler::sample(std::span<const float> logits, std::span<const std::int32_t> history) {
  work_.assign(logits.begin(), logits.end());
  apply_penalties(work_, history);

  if (params_.temperature <= 0.0f) {
    const std::int32_t best = argmax(work_);
    return {best, static_cast<float>(1.0 / sum_exp_below(work_, work_[best]))};
  }

  // Candidates sorted by logit, cut to top-k.
  order_.resize(work_.size());
  std::iota(order_.begin(), order_.end(), 0);
  std::size_t keep = work_.size();
  if (params_.top_k > 0) keep = std::min(keep, static_cast<std::size_t>(params_.top_k));
  auto by_logit = [&](std::int32_t a, std::int32_t b) { return work_[a] > work_[b] || (work_[a] == work_[b] && a < b); };
  std::partial_sort(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(keep), order_.end(), by_logit);
  order_.resize(keep);

  // Softmax at the temperature over the candidates.
  std::vector<double> probs(keep);
  const double max_logit = work_[order_[0]];
  double sum = 0.0;
  for (std::size_t i = 0; i < keep; ++i)
    sum += probs[i] = std::exp((work_[order_[i]] - max_logit) / params_.temperature);
  for (double& p : probs) p /= sum;

  // Top-p: the smallest prefix whose mass reaches top_p. Min-p: drop tokens below min_p times the best.
  std::size_t cut = keep;
  if (params_.top_p < 1.0f) {
    double cumulative = 0.0;
    for (std::size_t i = 0; i < keep; ++i) {
      cumulative += probs[i];
      if (cumulative >= params_.top_p) {
        cut = i + 1;
        break;
      }
    }
  }
  if (params_.min_p > 0.0f) {
    const double floor = params_.min_p * probs[0];
    std::size_t i = 1;
    while (i < cut && probs[i] >= floor) ++i;
    cut = i;
  }
  const double mass = std::accumulate(probs.begin(), probs.begin() + static_cast<std::ptrdiff_t>(cut), 0.0);

  // Draw from the renormalized remainder.
  double u = std::uniform_real_distribution<double>(0.0, mass)(rng_);
  std::size_t chosen = cut - 1;
  for (std::size_t i = 0; i < cut; ++i) {
    if (u < probs[i]) {
      chosen = i;
      break;
    }
    u -= probs[i];
  }
  return {order_[chosen], static_cast<float>(probs[chosen] / mass)};
}

}  // namespace bitrun
