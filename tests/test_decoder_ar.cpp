// The autoregressive decoder plugin, loaded from its .so and driven by a scripted "model" whose logits depend
// on the position being predicted.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "bitrun/config/config.hpp"
#include "bitrun/base/error.hpp"
#include "bitrun/plugin/plugin_host.hpp"
#include "test_support.hpp"

namespace bitrun {
namespace {

constexpr std::int32_t kVocab = 8;
constexpr std::int32_t kEos = 7;

// Logits for the token at `position`: a clear favourite chosen by `script`.
using Script = std::function<std::int32_t(std::int32_t position)>;

struct DecodeRun {
  std::vector<std::int32_t> tokens;
  FinishReason finish = FinishReason::None;
  std::vector<StepRequest> steps;
};

DecodeRun drive(DecodeSession& s, const Script& script) {
  DecodeRun run;
  while (s.finished() == FinishReason::None) {
    StepRequest step = s.next_step();
    run.steps.push_back(step);
    std::vector<float> logits;
    for (std::int32_t row : step.logit_rows) {
      std::vector<float> l(kVocab, 0.0f);
      l[static_cast<std::size_t>(script(step.position + row + 1))] = 10.0f;
      logits.insert(logits.end(), l.begin(), l.end());
    }
    for (std::int32_t t : s.consume(StepLogits{kVocab, logits})) run.tokens.push_back(t);
    if (run.steps.size() > 1000) break;
  }
  run.finish = s.finished();
  return run;
}

class ArDecoderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static PluginHost host({BITRUN_TEST_PLUGIN_DIR}, detect_cpu());
    decoder_ = host.create_decoder("ar", test::plugin_config());
  }
  DecodeRequest request(std::vector<std::int32_t> prompt, std::int32_t max_tokens, std::int32_t ctx = 64) {
    DecodeRequest r;
    r.prompt = std::move(prompt);
    r.max_tokens = max_tokens;
    r.context_size = ctx;
    r.end_tokens = {kEos};
    return r;
  }
  std::unique_ptr<Decoder> decoder_;
};

TEST_F(ArDecoderTest, PrefillsThePromptThenFeedsOneTokenPerStep) {
  auto s = decoder_->start(request({1, 2, 3}, 3));
  DecodeRun run = drive(*s, [](std::int32_t pos) { return pos % 5; });
  ASSERT_EQ(run.steps.size(), 3u);
  EXPECT_EQ(run.steps[0].tokens, (std::vector<std::int32_t>{1, 2, 3}));
  EXPECT_EQ(run.steps[0].position, 0);
  EXPECT_EQ(run.steps[0].logit_rows, (std::vector<std::int32_t>{2}));
  EXPECT_EQ(run.steps[1].tokens, (std::vector<std::int32_t>{3}));   // predicted for position 3
  EXPECT_EQ(run.steps[1].position, 3);
  EXPECT_EQ(run.steps[2].position, 4);
  EXPECT_EQ(run.tokens, (std::vector<std::int32_t>{3, 4, 0}));
  EXPECT_EQ(run.finish, FinishReason::Length);
}

TEST_F(ArDecoderTest, RejectsDecoderOptionsItDoesNotHave) {
  DecodeRequest r = request({1}, 2);
  r.decoder_options["threshold"] = "0.9";
  try {
    decoder_->start(r);
    FAIL() << "an unknown decoder option was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("threshold"), std::string::npos) << e.what();
  }
}

TEST_F(ArDecoderTest, MaxTokensIsExact) {
  for (std::int32_t n : {1, 2, 17}) {
    auto s = decoder_->start(request({1}, n));
    EXPECT_EQ(drive(*s, [](std::int32_t) { return 4; }).tokens.size(), static_cast<std::size_t>(n));
  }
}

TEST_F(ArDecoderTest, EndTokenStopsAndIsNotEmitted) {
  auto s = decoder_->start(request({1}, 50));
  DecodeRun run = drive(*s, [](std::int32_t pos) { return pos == 4 ? kEos : 2; });
  EXPECT_EQ(run.tokens, (std::vector<std::int32_t>{2, 2, 2}));
  EXPECT_EQ(run.finish, FinishReason::Stop);
}

TEST_F(ArDecoderTest, ContextLimitEndsWithLengthNeverOverflows) {
  auto s = decoder_->start(request({1, 1, 1}, 100, 8));
  DecodeRun run = drive(*s, [](std::int32_t) { return 3; });
  EXPECT_EQ(run.tokens.size(), 5u);   // positions 3..7 fill the 8-token context
  EXPECT_EQ(run.finish, FinishReason::Length);
  for (const auto& step : run.steps)
    EXPECT_LT(step.position + static_cast<std::int32_t>(step.tokens.size()), 9);
}

TEST_F(ArDecoderTest, RejectsRequestsThatCannotRun) {
  EXPECT_THROW(decoder_->start(request({}, 5)), Error);
  EXPECT_THROW(decoder_->start(request({1}, 0)), Error);
  EXPECT_THROW(decoder_->start(request({1, 2, 3, 4}, 5, 4)), Error);
}

TEST_F(ArDecoderTest, ReportsLogprobsWhenAsked) {
  DecodeRequest r = request({1}, 2);
  r.logprobs = 2;
  auto s = decoder_->start(r);
  s->next_step();
  std::vector<float> logits(kVocab, 0.0f);
  logits[3] = 2.0f;
  logits[5] = 1.0f;
  ASSERT_EQ(s->consume(StepLogits{kVocab, logits}), (std::vector<std::int32_t>{3}));
  const std::vector<TokenLogprob> lp = s->take_logprobs();
  ASSERT_EQ(lp.size(), 1u);
  const double z = std::log(std::exp(2.0) + std::exp(1.0) + (kVocab - 2));
  EXPECT_EQ(lp[0].token, 3);
  EXPECT_NEAR(lp[0].logprob, 2.0 - z, 1e-5);
  ASSERT_EQ(lp[0].top.size(), 2u);
  EXPECT_EQ(lp[0].top[0].first, 3);
  EXPECT_EQ(lp[0].top[1].first, 5);
  EXPECT_NEAR(lp[0].top[1].second, 1.0 - z, 1e-5);
  EXPECT_TRUE(s->take_logprobs().empty());   // taken once
  // Not asked: nothing.
  auto plain = decoder_->start(request({1}, 2));
  plain->next_step();
  plain->consume(StepLogits{kVocab, logits});
  EXPECT_TRUE(plain->take_logprobs().empty());
  DecodeRequest too_many = request({1}, 2);
  too_many.logprobs = 21;
  EXPECT_THROW(decoder_->start(too_many), Error);
}

TEST_F(ArDecoderTest, SeededSamplingIsReproducible) {
  auto sampled = [&](std::uint64_t seed) {
    DecodeRequest r = request({1}, 32);
    r.sampling.temperature = 1.0f;
    r.sampling.seed = seed;
    r.end_tokens.clear();
    auto s = decoder_->start(r);
    std::vector<std::int32_t> out;
    while (s->finished() == FinishReason::None) {
      s->next_step();
      std::vector<float> flat(kVocab, 0.0f);   // uniform: every token equally likely
      for (auto t : s->consume(StepLogits{kVocab, flat})) out.push_back(t);
    }
    return out;
  };
  EXPECT_EQ(sampled(5), sampled(5));
  EXPECT_NE(sampled(5), sampled(6));
}

}  // namespace
}  // namespace bitrun
