// Sampling chain: greedy, reproducibility, the distribution it draws from, and each filter and penalty.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>

#include "bitrun/engine/sampler.hpp"

namespace bitrun {
namespace {

std::map<std::int32_t, double> frequencies(SamplingParams p, const std::vector<float>& logits, int draws,
                                           const std::vector<std::int32_t>& history = {}) {
  Sampler s(p);
  std::map<std::int32_t, double> freq;
  for (int i = 0; i < draws; ++i) freq[s.sample(logits, history).id] += 1.0 / draws;
  return freq;
}

std::vector<double> softmax(const std::vector<float>& logits, float t) {
  std::vector<double> p(logits.size());
  double sum = 0.0;
  for (std::size_t i = 0; i < logits.size(); ++i) sum += p[i] = std::exp(logits[i] / t);
  for (auto& x : p) x /= sum;
  return p;
}

const std::vector<float> kLogits = {1.0f, 2.0f, 0.5f, 3.0f, -1.0f};

TEST(Sampler, GreedyTakesTheArgmaxAndReportsItsProbability) {
  SamplingParams p;
  p.temperature = 0.0f;
  Sampler s(p);
  SampledToken t = s.sample(kLogits, {});
  EXPECT_EQ(t.id, 3);
  EXPECT_NEAR(t.probability, softmax(kLogits, 1.0f)[3], 1e-6);
  EXPECT_EQ(argmax(std::vector<float>{1.0f, 5.0f, 5.0f}), 1) << "ties go to the lowest id";
}

// The softmax normaliser (greedy probability, logprobs) against a double-precision sum: sizes around its 64-term
// chunks and a 128,256-token vocabulary, masked (-inf) entries, and values far below the maximum.
TEST(Sampler, SumExpBelowTracksDoublePrecision) {
  std::mt19937 rng(7);
  std::normal_distribution<float> logit(0.0f, 6.0f);
  for (std::size_t n : {1u, 7u, 63u, 64u, 65u, 513u, 128256u}) {
    std::vector<float> v(n);
    for (auto& x : v) x = logit(rng);
    if (n > 3) v[2] = -std::numeric_limits<float>::infinity();
    if (n > 5) v[4] = -200.0f;
    const float top = *std::max_element(v.begin(), v.end());
    double want = 0.0;
    for (float x : v) want += std::exp(static_cast<double>(x) - top);
    EXPECT_NEAR(sum_exp_below(v, top) / want, 1.0, 1e-6) << n << " values";
  }
  // Each term: e^x over [-87, 0] within 2.4e-7 relative; below that (-inf too) under FLT_MIN.
  for (float x = -87.0f; x <= 0.0f; x += 0.0137f) {
    const std::vector<float> one = {x};
    const double want = std::exp(static_cast<double>(x));
    ASSERT_NEAR(sum_exp_below(one, 0.0f) / want, 1.0, 2.5e-7) << x;
  }
  EXPECT_LT(sum_exp_below(std::vector<float>{-std::numeric_limits<float>::infinity()}, 0.0f), 1.2e-38 * 2);
  EXPECT_NEAR(log_sum_exp(kLogits), std::log(1 / softmax(kLogits, 1.0f)[3]) + 3.0, 1e-6);
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDifferentTokens) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 42;
  Sampler a(p), b(p);
  p.seed = 43;
  Sampler c(p);
  std::vector<std::int32_t> ra, rb, rc;
  for (int i = 0; i < 64; ++i) {
    ra.push_back(a.sample(kLogits, {}).id);
    rb.push_back(b.sample(kLogits, {}).id);
    rc.push_back(c.sample(kLogits, {}).id);
  }
  EXPECT_EQ(ra, rb);
  EXPECT_NE(ra, rc);
}

TEST(Sampler, DrawsFromTheTemperedSoftmax) {
  for (float t : {1.0f, 0.5f, 2.0f}) {
    SamplingParams p;
    p.temperature = t;
    p.seed = 7;
    auto freq = frequencies(p, kLogits, 40000);
    auto want = softmax(kLogits, t);
    for (std::size_t i = 0; i < want.size(); ++i)
      EXPECT_NEAR(freq[static_cast<std::int32_t>(i)], want[i], 0.012) << "temperature " << t << " token " << i;
  }
}

TEST(Sampler, TopKKeepsOnlyTheKBest) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 2;
  auto freq = frequencies(p, kLogits, 20000);
  EXPECT_EQ(freq.size(), 2u);
  const double p3 = std::exp(3.0), p1 = std::exp(2.0);
  EXPECT_NEAR(freq[3], p3 / (p3 + p1), 0.015);
}

TEST(Sampler, TopPKeepsTheSmallestPrefixReachingP) {
  SamplingParams p;
  p.temperature = 1.0f;
  auto sm = softmax(kLogits, 1.0f);   // sorted: 3 (0.61), 1 (0.22), 0 (0.08), 2 (0.05), 4 (0.01)
  p.top_p = static_cast<float>(sm[3] + sm[1] - 0.01);   // needs tokens 3 and 1
  auto freq = frequencies(p, kLogits, 20000);
  EXPECT_EQ(freq.size(), 2u);
  EXPECT_TRUE(freq.count(3) && freq.count(1));
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.min_p = 0.3f;   // keeps tokens with prob >= 0.3 * p(best): 3 and 1 (0.22/0.61 = 0.37), not 0 (0.13)
  auto freq = frequencies(p, kLogits, 20000);
  EXPECT_EQ(freq.size(), 2u);
}

TEST(Sampler, RepeatPenaltyLowersRepeatedTokens) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.repeat_penalty = 2.0f;   // token 3: 3.0 -> 1.5, below token 1 (2.0)
  Sampler s(p);
  EXPECT_EQ(s.sample(kLogits, std::vector<std::int32_t>{3}).id, 1);
  p.penalty_last_n = 1;      // token 3 is outside the window of the last 1 token
  Sampler windowed(p);
  EXPECT_EQ(windowed.sample(kLogits, std::vector<std::int32_t>{3, 0}).id, 3);
}

TEST(Sampler, PresenceAndFrequencyPenalties) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.presence_penalty = 0.6f;   // 3.0 - 0.6 = 2.4 still beats 2.0
  Sampler presence(p);
  EXPECT_EQ(presence.sample(kLogits, std::vector<std::int32_t>{3, 3}).id, 3);
  p.presence_penalty = 0.0f;
  p.frequency_penalty = 0.6f;  // 3.0 - 2 * 0.6 = 1.8 loses to 2.0
  Sampler frequency(p);
  EXPECT_EQ(frequency.sample(kLogits, std::vector<std::int32_t>{3, 3}).id, 1);
  EXPECT_EQ(frequency.sample(kLogits, std::vector<std::int32_t>{3}).id, 3);
}

}  // namespace
}  // namespace bitrun
