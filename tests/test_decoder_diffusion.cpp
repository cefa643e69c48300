// The block-diffusion decoder plugin, loaded from its .so and driven by a scripted "model": the logits of a row
// are chosen by the test from the position it predicts (step.position + row + 1: the token shift) and the step
// number, so every rule of ../shared/reference/diffusion.md can be pinned without a trained diffusion model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>

#include "bitrun/config/config.hpp"
#include "bitrun/base/error.hpp"
#include "bitrun/plugin/plugin_host.hpp"
#include "test_support.hpp"

namespace bitrun {
namespace {

constexpr std::int32_t kVocab = 16;
constexpr std::int32_t kMask = 15;
constexpr std::int32_t kEos = 14;

// Logits whose softmax over the vocabulary without the mask token gives `token` probability `p` and spreads the
// rest evenly: what the decoder sees as the prediction's confidence.
std::vector<float> favourite(std::int32_t token, double p) {
  std::vector<float> l(kVocab, 0.0f);
  l[static_cast<std::size_t>(token)] = static_cast<float>(std::log(p * (kVocab - 2) / (1.0 - p)));
  return l;
}

// The entropy (nats) of that distribution.
double favourite_entropy(double p) {
  const double rest = (1.0 - p) / (kVocab - 2);
  return -p * std::log(p) - (1.0 - p) * std::log(rest);
}

// Logits for the position a row predicts, at the given (0-based) step.
using Script = std::function<std::vector<float>(std::size_t step, std::int32_t position)>;

// A token that depends on the position (never the mask or EOS), so a shifted read shows.
std::int32_t token_for(std::int32_t position) { return position % 13; }
Script confident(double p = 0.99) {
  return [p](std::size_t, std::int32_t pos) { return favourite(token_for(pos), p); };
}

struct DecodeRun {
  std::vector<std::int32_t> tokens;
  std::vector<std::vector<std::int32_t>> per_step;   // what each consume() returned
  std::vector<StepRequest> steps;
  FinishReason finish = FinishReason::None;
};

DecodeRun drive(DecodeSession& s, const Script& script) {
  DecodeRun run;
  while (s.finished() == FinishReason::None && run.steps.size() < 10000) {
    StepRequest step = s.next_step();
    std::vector<float> logits;
    for (std::int32_t row : step.logit_rows) {
      const std::vector<float> l = script(run.steps.size(), step.position + row + 1);
      logits.insert(logits.end(), l.begin(), l.end());
    }
    run.steps.push_back(step);
    run.per_step.push_back(s.consume(StepLogits{kVocab, logits}));
    run.tokens.insert(run.tokens.end(), run.per_step.back().begin(), run.per_step.back().end());
  }
  run.finish = s.finished();
  return run;
}

bool is_commit(const StepRequest& s, std::int32_t block) {
  return s.attention == StepAttention::BlockCausal && s.logit_rows.size() == 1 &&
         s.logit_rows[0] == static_cast<std::int32_t>(s.tokens.size()) - 1 && s.position % block == 0 &&
         std::find(s.tokens.begin(), s.tokens.end(), kMask) == s.tokens.end();
}

// Positions fed as known tokens (not MASK) by a step.
std::set<std::int32_t> known_positions(const StepRequest& s) {
  std::set<std::int32_t> known;
  for (std::size_t i = 0; i < s.tokens.size(); ++i)
    if (s.tokens[i] != kMask) known.insert(s.position + static_cast<std::int32_t>(i));
  return known;
}

std::vector<std::int32_t> iota_prompt(std::int32_t n) {
  std::vector<std::int32_t> p;
  for (std::int32_t i = 0; i < n; ++i) p.push_back(1 + i % 12);
  return p;
}

class DiffusionDecoderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static PluginHost host({BITRUN_TEST_PLUGIN_DIR}, detect_cpu());
    host_ = &host;
    decoder_ = host.create_decoder("diffusion", test::plugin_config());
  }
  // A block-causal model with block size 8; options override decoder.* per request.
  DecodeRequest request(std::int32_t prompt_len, std::int32_t max_tokens, std::map<std::string, std::string> options,
                        std::int32_t ctx = 256) {
    DecodeRequest r;
    r.prompt = iota_prompt(prompt_len);
    r.max_tokens = max_tokens;
    r.context_size = ctx;
    r.end_tokens = {kEos};
    r.decoder_options = std::move(options);
    r.model.vocab_size = kVocab;
    r.model.mask_token = kMask;
    r.model.diffusion.block_size = 8;
    r.model.diffusion.attention = DiffusionAttention::BlockCausal;
    return r;
  }
  DecodeRun run(const DecodeRequest& r, const Script& script) { return drive(*decoder_->start(r), script); }

  PluginHost* host_ = nullptr;
  std::unique_ptr<Decoder> decoder_;
};

TEST_F(DiffusionDecoderTest, RowJMinusOnePredictsPositionJ) {
  // Prompt of 3 in a block of 8: the first step computes the prompt's block with 5 masks; rows 2..6 predict 3..7.
  DecodeRun r = run(request(3, 13, {{"mode", "greedy"}, {"sub_block_size", "8"}}), confident());
  ASSERT_GE(r.steps.size(), 3u);
  const StepRequest& first = r.steps[0];
  EXPECT_EQ(first.position, 0);
  EXPECT_EQ(first.attention, StepAttention::BlockCausal);
  EXPECT_EQ(first.block_size, 8);
  EXPECT_EQ(first.tokens, (std::vector<std::int32_t>{1, 2, 3, kMask, kMask, kMask, kMask, kMask}));
  EXPECT_EQ(first.logit_rows, (std::vector<std::int32_t>{2, 3, 4, 5, 6}));
  // The commit re-runs the finished block; its last row predicts position 8.
  EXPECT_TRUE(is_commit(r.steps[1], 8));
  EXPECT_EQ(r.steps[1].position, 0);
  EXPECT_EQ(r.steps[1].tokens, (std::vector<std::int32_t>{1, 2, 3, token_for(3), token_for(4), token_for(5),
                                                            token_for(6), token_for(7)}));
  // The next block starts with that token, known, and its rows 0..6 predict positions 9..15.
  EXPECT_EQ(r.steps[2].position, 8);
  EXPECT_EQ(r.steps[2].tokens[0], token_for(8));
  EXPECT_EQ(r.steps[2].logit_rows, (std::vector<std::int32_t>{0, 1, 2, 3, 4, 5, 6}));
  std::vector<std::int32_t> expected;
  for (std::int32_t p = 3; p < 16; ++p) expected.push_back(token_for(p));
  EXPECT_EQ(r.tokens, expected);
  EXPECT_EQ(r.finish, FinishReason::Length);
}

TEST_F(DiffusionDecoderTest, ThresholdOneUnmasksOneTokenPerStepAndTakesBForwardsPerBlock) {
  // Prompt of one block: prefill, then per 8-token block 7 one-token steps and the commit (which adds the 8th).
  // Confidences rise to the right, so the single token per step is not always the leftmost.
  const Script rising = [](std::size_t, std::int32_t pos) { return favourite(token_for(pos), 0.5 + 0.04 * (pos % 8)); };
  DecodeRun r = run(request(8, 17, {{"threshold", "1"}, {"sub_block_size", "8"}}), rising);
  ASSERT_EQ(r.steps.size(), 17u);   // 1 prefill + 2 x (7 steps + commit)
  EXPECT_EQ(r.tokens.size(), 17u);
  for (std::size_t block = 0; block < 2; ++block) {
    const std::size_t first = 1 + block * 8;
    std::set<std::int32_t> before = known_positions(r.steps[first]);
    for (std::size_t s = first + 1; s < first + 8; ++s) {   // each step's inputs know exactly one more position
      const std::set<std::int32_t> now = known_positions(r.steps[s]);
      EXPECT_EQ(now.size(), before.size() + 1) << "step " << s;
      before = now;
    }
    EXPECT_TRUE(is_commit(r.steps[first + 7], 8)) << "block " << block;
  }
  // Rising confidence: the rightmost mask goes first, so nothing is final until the block is full.
  EXPECT_TRUE(r.per_step[2].empty());
  EXPECT_EQ(r.per_step[7].size(), 7u);
}

TEST_F(DiffusionDecoderTest, ThresholdZeroTakesOneStepPerSubBlock) {
  DecodeRun r = run(request(8, 16, {{"threshold", "0"}, {"sub_block_size", "4"}}), confident(0.3));
  // Prefill, then per block: sub-block 9..11, sub-block 12..15, commit (the last block needs none).
  ASSERT_EQ(r.steps.size(), 6u);
  EXPECT_EQ(r.steps[0].tokens.size(), 8u);   // prefill
  EXPECT_EQ(r.steps[1].logit_rows, (std::vector<std::int32_t>{0, 1, 2}));
  EXPECT_EQ(r.steps[2].logit_rows, (std::vector<std::int32_t>{3, 4, 5, 6}));
  EXPECT_TRUE(is_commit(r.steps[3], 8));
  EXPECT_EQ(r.per_step[1].size(), 3u);
  EXPECT_EQ(r.per_step[2].size(), 4u);
  EXPECT_EQ(r.per_step[3].size(), 1u);   // the commit's token, first of the next block
  EXPECT_EQ(r.tokens.size(), 16u);
}

TEST_F(DiffusionDecoderTest, EndTokenStopsOnceNoMaskPrecedesIt) {
  // Step 1 places EOS at 11 (0.99 > 0.9) while 9 and 10 stay masked: nothing final yet. Step 2 fills 9 and 10:
  // the prefix reaches the EOS, which stops the request without a commit and is not emitted.
  const Script script = [](std::size_t step, std::int32_t pos) {
    if (pos == 11) return favourite(kEos, 0.99);
    if (pos == 9 || pos == 10) return favourite(token_for(pos), step < 2 ? 0.5 : 0.95);
    return favourite(token_for(pos), 0.2);
  };
  DecodeRun r = run(request(8, 50, {{"threshold", "0.9"}, {"sub_block_size", "8"}}), script);
  ASSERT_EQ(r.steps.size(), 3u);   // prefill, 2 block steps, no commit
  EXPECT_TRUE(r.per_step[1].empty());
  EXPECT_EQ(r.tokens, (std::vector<std::int32_t>{token_for(8), token_for(9), token_for(10)}));
  EXPECT_EQ(r.finish, FinishReason::Stop);
  // An EOS predicted AR-style (by the prefill) stops at once.
  DecodeRun at_once = run(request(8, 50, {}), [](std::size_t, std::int32_t) { return favourite(kEos, 0.9); });
  EXPECT_TRUE(at_once.tokens.empty());
  EXPECT_EQ(at_once.finish, FinishReason::Stop);
  EXPECT_EQ(at_once.steps.size(), 1u);
}

TEST_F(DiffusionDecoderTest, PromptOfExactlyOneBlockIsPrefilledAndPredictsTheFirstToken) {
  for (std::int32_t len : {8, 16}) {
    DecodeRun r = run(request(len, 3, {{"mode", "greedy"}}), confident());
    ASSERT_GE(r.steps.size(), 2u);
    EXPECT_EQ(r.steps[0].position, 0);
    EXPECT_EQ(r.steps[0].attention, StepAttention::BlockCausal);
    EXPECT_EQ(r.steps[0].tokens, iota_prompt(len));
    EXPECT_EQ(r.steps[0].logit_rows, (std::vector<std::int32_t>{len - 1}));
    EXPECT_EQ(r.per_step[0], (std::vector<std::int32_t>{token_for(len)}));
    // The prompt is never overwritten: the next block starts after it with the predicted token.
    EXPECT_EQ(r.steps[1].position, len);
    EXPECT_EQ(r.steps[1].tokens[0], token_for(len));
    EXPECT_EQ(r.tokens, (std::vector<std::int32_t>{token_for(len), token_for(len + 1), token_for(len + 2)}));
  }
}

TEST_F(DiffusionDecoderTest, MaxTokensIsExactEvenMidBlock) {
  for (const char* mode : {"greedy", "iterative", "adaptive", "factor", "eb"})
    for (std::int32_t prompt : {1, 5, 8})
      for (std::int32_t n : {1, 2, 7, 8, 9, 20}) {
        DecodeRun r = run(request(prompt, n, {{"mode", mode}, {"sub_block_size", "4"}}), confident(0.6));
        EXPECT_EQ(r.tokens.size(), static_cast<std::size_t>(n)) << mode << " prompt " << prompt;
        EXPECT_EQ(r.finish, FinishReason::Length);
        // Positions past the limit never compete.
        for (const StepRequest& s : r.steps)
          for (std::int32_t row : s.logit_rows) EXPECT_LT(s.position + row + 1, prompt + n);
      }
}

TEST_F(DiffusionDecoderTest, ContextEndsGenerationWithLengthAndLongPromptsAreRefused) {
  DecodeRun r = run(request(3, 100, {{"mode", "greedy"}}, 13), confident());
  EXPECT_EQ(r.tokens.size(), 10u);   // positions 3..12
  EXPECT_EQ(r.finish, FinishReason::Length);
  for (const StepRequest& s : r.steps) EXPECT_LE(s.position + static_cast<std::int32_t>(s.tokens.size()), 13);
  const std::string msg = test::error_message<Error>([&] { decoder_->start(request(13, 5, {}, 13)); });
  EXPECT_NE(msg.find("the prompt has 13 tokens; the context holds 13"), std::string::npos) << msg;
}

TEST_F(DiffusionDecoderTest, MaskIsNeverEmitted) {
  // The model's favourite is MASK everywhere; the runner-up must be taken, greedy or sampled.
  const Script wants_mask = [](std::size_t, std::int32_t pos) {
    std::vector<float> l(kVocab, 0.0f);
    l[kMask] = 9.0f;
    l[static_cast<std::size_t>(token_for(pos))] = 4.0f;
    return l;
  };
  for (float temperature : {0.0f, 1.0f}) {
    DecodeRequest req = request(5, 30, {{"mode", "iterative"}});
    req.sampling.temperature = temperature;
    req.sampling.seed = 3;
    req.end_tokens.clear();   // sampling may draw EOS
    DecodeRun r = run(req, wants_mask);
    EXPECT_EQ(r.tokens.size(), 30u);
    EXPECT_EQ(std::count(r.tokens.begin(), r.tokens.end(), kMask), 0);
    if (temperature == 0.0f) {
      EXPECT_EQ(r.tokens[0], token_for(5));
    }
  }
}

TEST_F(DiffusionDecoderTest, AdaptiveThresholdRisesPerIterationOfASubBlock) {
  // Block positions 9..15 (prompt 8 + the prefill's token). Each step's lowered threshold (0.5, 0.7, then 0.9)
  // admits the leftmost run of masked positions while each clears it; past the run only 0.9 does.
  const Script script = [](std::size_t step, std::int32_t pos) {
    const std::map<std::int32_t, double> by_step[] = {
        {},
        {{9, 0.55}, {10, 0.52}, {11, 0.45}, {12, 0.6}, {13, 0.95}, {14, 0.45}, {15, 0.45}},
        {{11, 0.75}, {12, 0.72}, {14, 0.65}, {15, 0.8}},
        {{14, 0.95}, {15, 0.85}},
        {{15, 0.3}}};
    const auto& m = by_step[std::min<std::size_t>(step, 4)];
    auto it = m.find(pos);
    return favourite(token_for(pos), it == m.end() ? 0.1 : it->second);
  };
  DecodeRun r = run(request(8, 8, {{"mode", "adaptive"}, {"threshold", "0.9"}, {"sub_block_size", "8"}}), script);
  ASSERT_EQ(r.steps.size(), 5u);
  auto newly_known = [&](std::size_t step) {
    std::set<std::int32_t> out;
    const auto before = known_positions(r.steps[step]), after = known_positions(r.steps[step + 1]);
    std::set_difference(after.begin(), after.end(), before.begin(), before.end(), std::inserter(out, out.end()));
    return out;
  };
  EXPECT_EQ(newly_known(1), (std::set<std::int32_t>{9, 10, 13}));   // run at max(0.5, 0.9 - 0.4); 12 is past it
  EXPECT_EQ(newly_known(2), (std::set<std::int32_t>{11, 12}));      // run at max(0.7, 0.9 - 0.2); 15 is past it
  EXPECT_EQ(newly_known(3), (std::set<std::int32_t>{14}));          // 0.9
  EXPECT_EQ(r.tokens.size(), 8u);
  // Plain iterative at 0.9 takes only 13 in step 1.
  DecodeRun it = run(request(8, 8, {{"mode", "iterative"}, {"threshold", "0.9"}, {"sub_block_size", "8"}}), script);
  EXPECT_EQ(known_positions(it.steps[2]).size(), known_positions(it.steps[1]).size() + 1);
}

TEST_F(DiffusionDecoderTest, AdaptiveScheduleRestartsWithEachSubBlock) {
  // Two sub-blocks of 4 (positions 9..11, 12..15), every confidence 0.6: the first iteration of each sub-block
  // (threshold 0.5) fills it at once.
  DecodeRun r = run(request(8, 8, {{"mode", "adaptive"}, {"threshold", "0.9"}, {"sub_block_size", "4"}}),
                    confident(0.6));
  ASSERT_EQ(r.steps.size(), 3u);   // prefill, one step per sub-block
  EXPECT_EQ(r.per_step[1].size(), 3u);
  EXPECT_EQ(r.per_step[2].size(), 4u);
}

TEST_F(DiffusionDecoderTest, SubBlockCacheForwardsOnlyTheSubBlockWhileItsFirstTokenIsKnown) {
  // One token per step, leftmost first. Sub-block 8..11 starts known (8): one full step, then two sub-block
  // steps. Sub-block 12..15 starts masked: a full step fills 12, then three sub-block steps. Then the commit.
  const Script leftmost = [](std::size_t, std::int32_t pos) { return favourite(token_for(pos), 0.9 - 0.01 * (pos % 8)); };
  auto opts = std::map<std::string, std::string>{{"threshold", "1"}, {"sub_block_size", "4"}, {"sub_block_cache", "true"}};
  DecodeRun r = run(request(8, 17, opts), leftmost);
  std::size_t cached = 0, full = 0;
  for (std::size_t i = 1; i < r.steps.size(); ++i) {
    const StepRequest& s = r.steps[i];
    if (s.cached_until != 0) {
      ++cached;
      EXPECT_EQ(s.attention, StepAttention::Bidirectional);
      EXPECT_EQ(s.tokens.size(), 4u);
      EXPECT_EQ(s.position % 4, 0);
      EXPECT_NE(s.tokens[0], kMask);
      EXPECT_EQ(s.cached_until, (s.position / 8 + 1) * 8);
    } else if (!is_commit(s, 8)) {
      ++full;
      EXPECT_EQ(s.tokens.size(), 8u);
    }
  }
  EXPECT_EQ(cached, 10u);   // 5 per block, 2 blocks
  EXPECT_EQ(full, 4u);
  EXPECT_EQ(r.steps.size(), 1u + 2 * 8);   // still B forwards per block at threshold 1
  // Sub-block rows predict like full-block rows: same tokens as without the cache.
  opts["sub_block_cache"] = "false";
  DecodeRun plain = run(request(8, 17, opts), leftmost);
  EXPECT_EQ(plain.tokens, r.tokens);
  for (const StepRequest& s : plain.steps) EXPECT_EQ(s.cached_until, 0);
}

TEST_F(DiffusionDecoderTest, FactorRuleUnmasksTheMostConfidentWhile_NPlusOneTimesDoubtStaysBelowTheFactor) {
  // Confidences 0.99, 0.9, 0.8, 0.6 (positions 12, 10, 13, 9), the rest 0.3, factor 1:
  // n=2: 3 x 0.1 = 0.3 < 1; n=3: 4 x 0.2 = 0.8 < 1; n=4: 5 x 0.4 = 2 >= 1 -> three positions.
  const Script script = [](std::size_t, std::int32_t pos) {
    const std::map<std::int32_t, double> c{{12, 0.99}, {10, 0.9}, {13, 0.8}, {9, 0.6}};
    auto it = c.find(pos);
    return favourite(token_for(pos), it == c.end() ? 0.3 : it->second);
  };
  DecodeRun r = run(request(8, 8, {{"mode", "factor"}, {"factor", "1"}, {"sub_block_size", "8"}}), script);
  ASSERT_GE(r.steps.size(), 3u);
  const auto after = known_positions(r.steps[2]);
  for (std::int32_t p : {10, 12, 13}) EXPECT_TRUE(after.count(p)) << p;
  EXPECT_EQ(after.count(9), 0u);
  EXPECT_EQ(after.size(), 1u + 3);   // the block's first token (from the prefill) and three unmasked
  // A larger factor takes the fourth as well (5 x 0.4 = 2 < 2.5).
  DecodeRun wide = run(request(8, 8, {{"mode", "factor"}, {"factor", "2.5"}, {"sub_block_size", "8"}}), script);
  EXPECT_EQ(known_positions(wide.steps[2]).size(), 1u + 4);
}

TEST_F(DiffusionDecoderTest, EntropyBudgetTakesLowEntropyPositionsWithinGamma) {
  // Entropies rise with falling confidence 0.999 (pos 11), 0.99 (pos 9), 0.9 (pos 14), the rest 0.5.
  const double h1 = favourite_entropy(0.999), h2 = favourite_entropy(0.99), h3 = favourite_entropy(0.9);
  ASSERT_LT(h1 + h2, 0.1);
  ASSERT_GT(h1 + h2 + h3, 0.1);
  const Script script = [](std::size_t, std::int32_t pos) {
    const std::map<std::int32_t, double> c{{11, 0.999}, {9, 0.99}, {14, 0.9}};
    auto it = c.find(pos);
    return favourite(token_for(pos), it == c.end() ? 0.5 : it->second);
  };
  // gamma 0.1: k=3 needs h1 + h2 <= 0.1 (yes); k=4 needs h1 + h2 + h3 <= 0.1 (no).
  DecodeRun r = run(request(8, 8, {{"mode", "eb"}, {"gamma", "0.1"}, {"sub_block_size", "8"}}), script);
  const auto after = known_positions(r.steps[2]);
  for (std::int32_t p : {9, 11, 14}) EXPECT_TRUE(after.count(p)) << p;
  EXPECT_EQ(after.size(), 1u + 3);
  // gamma 0: only the lowest-entropy position.
  DecodeRun tight = run(request(8, 8, {{"mode", "eb"}, {"gamma", "0"}, {"sub_block_size", "8"}}), script);
  const auto one = known_positions(tight.steps[2]);
  EXPECT_EQ(one.size(), 1u + 1);
  EXPECT_TRUE(one.count(11));
}

TEST_F(DiffusionDecoderTest, IterationCapFillsTheLeftoversWithTheirPredictions) {
  // Threshold 1 would need 7 steps; the cap of 2 fills the remaining six positions in the second step.
  DecodeRun r = run(request(8, 8, {{"threshold", "1"}, {"max_iterations_per_block", "2"}, {"sub_block_size", "8"}}),
                    confident(0.5));
  ASSERT_EQ(r.steps.size(), 3u);
  EXPECT_EQ(r.tokens.size(), 8u);
  EXPECT_EQ(std::count(r.tokens.begin(), r.tokens.end(), kMask), 0);
}

TEST_F(DiffusionDecoderTest, CausalContractFeedsOnlyWhatThePredictionsNeedAndRefreshesMaskedKv) {
  DecodeRequest req = request(3, 8, {{"mode", "greedy"}, {"block_size", "4"}, {"sub_block_size", "4"}});
  req.model.diffusion.attention = DiffusionAttention::Causal;
  DecodeRun r = run(req, confident());
  ASSERT_EQ(r.steps.size(), 2u);
  // Block 3..6 right after the prompt: rows 2..5 predict 3..6, causal, no commit.
  EXPECT_EQ(r.steps[0].attention, StepAttention::Causal);
  EXPECT_EQ(r.steps[0].position, 0);
  EXPECT_EQ(r.steps[0].tokens, (std::vector<std::int32_t>{1, 2, 3, kMask, kMask, kMask}));
  EXPECT_EQ(r.steps[0].logit_rows, (std::vector<std::int32_t>{2, 3, 4, 5}));
  // Block 7..10 re-feeds from position 3, the first one cached from a MASK input.
  EXPECT_EQ(r.steps[1].position, 3);
  EXPECT_EQ(r.steps[1].tokens, (std::vector<std::int32_t>{token_for(3), token_for(4), token_for(5), token_for(6), kMask,
                                                            kMask, kMask}));
  EXPECT_EQ(r.steps[1].logit_rows, (std::vector<std::int32_t>{3, 4, 5, 6}));
  std::vector<std::int32_t> expected;
  for (std::int32_t p = 3; p < 11; ++p) expected.push_back(token_for(p));
  EXPECT_EQ(r.tokens, expected);
  // decoder.attention overrides the model's contract.
  Config config = test::plugin_config();
  config.set("decoder.attention", "block-causal", ConfigSource::CommandLine, "test");
  DecodeRun forced = drive(*host_->create_decoder("diffusion", config)->start(req), confident());
  EXPECT_EQ(forced.steps[0].attention, StepAttention::BlockCausal);
}

TEST_F(DiffusionDecoderTest, BlockSizeComesFromTheRequestThenTheModelThenThirtyTwo) {
  DecodeRequest req = request(3, 40, {{"mode", "greedy"}, {"sub_block_size", "64"}});
  EXPECT_EQ(run(req, confident()).steps[0].tokens.size(), 8u);   // the model's 8
  req.model.diffusion.block_size = 0;
  EXPECT_EQ(run(req, confident()).steps[0].tokens.size(), 32u);
  req.decoder_options["block_size"] = "16";
  EXPECT_EQ(run(req, confident()).steps[0].tokens.size(), 16u);
}

TEST_F(DiffusionDecoderTest, LogprobsCoverEachEmittedTokenWithoutTheMask) {
  DecodeRequest req = request(5, 12, {{"mode", "greedy"}});
  req.logprobs = 2;
  auto s = decoder_->start(req);
  std::size_t seen = 0;
  while (s->finished() == FinishReason::None) {
    StepRequest step = s->next_step();
    std::vector<float> logits;
    for (std::int32_t row : step.logit_rows) {
      std::vector<float> l = favourite(token_for(step.position + row + 1), 0.8);
      l[kMask] = 20.0f;   // would top the alternatives if it counted
      logits.insert(logits.end(), l.begin(), l.end());
    }
    const std::vector<std::int32_t> out = s->consume(StepLogits{kVocab, logits});
    const std::vector<TokenLogprob> lp = s->take_logprobs();
    ASSERT_EQ(lp.size(), out.size());
    for (std::size_t i = 0; i < out.size(); ++i) {
      EXPECT_EQ(lp[i].token, out[i]);
      EXPECT_NEAR(lp[i].logprob, std::log(0.8), 1e-4);
      ASSERT_EQ(lp[i].top.size(), 2u);
      EXPECT_EQ(lp[i].top[0].first, out[i]);
      EXPECT_NE(lp[i].top[1].first, kMask);
    }
    seen += out.size();
  }
  EXPECT_EQ(seen, 12u);
}

TEST_F(DiffusionDecoderTest, SeededSamplingIsReproducible) {
  auto sampled = [&](std::uint64_t seed) {
    DecodeRequest req = request(5, 24, {{"mode", "iterative"}});
    req.sampling.temperature = 1.0f;
    req.sampling.seed = seed;
    req.end_tokens.clear();
    return run(req, [](std::size_t, std::int32_t) { return std::vector<float>(kVocab, 0.0f); }).tokens;
  };
  EXPECT_EQ(sampled(5), sampled(5));
  EXPECT_NE(sampled(5), sampled(6));
}

TEST_F(DiffusionDecoderTest, BadOptionsAreConfigErrorsNamingThem) {
  const std::vector<std::pair<std::map<std::string, std::string>, std::string>> cases = {
      {{{"temperature", "1"}}, "no option 'temperature'"},
      {{{"mode", "fast"}}, "decoder option: key 'mode': 'fast' is not one of: greedy, iterative, adaptive"},
      {{{"threshold", "1.5"}}, "key 'threshold': value 1.5 is out of range [0, 1]"},
      {{{"threshold", "abc"}}, "key 'threshold': expected a number, got 'abc'"},
      {{{"sub_block_size", "0"}}, "key 'sub_block_size': value 0 is out of range"},
      {{{"block_size", "8x"}}, "key 'block_size': expected an integer, got '8x'"},
      {{{"max_iterations_per_block", "-1"}}, "key 'max_iterations_per_block': value -1 is out of range"},
      {{{"sub_block_cache", "maybe"}}, "key 'sub_block_cache': expected true or false, got 'maybe'"},
      {{{"gamma", "-0.5"}}, "key 'gamma': value -0.5 is out of range"},
      {{{"mask_token", "3"}}, "describes the model"},
  };
  for (const auto& [options, expected] : cases) {
    const std::string msg = test::error_message<ConfigError>([&] { decoder_->start(request(3, 4, options)); });
    EXPECT_NE(msg.find(expected), std::string::npos) << msg;
  }
}

TEST_F(DiffusionDecoderTest, ModelsItCannotDecodeAreClearErrors) {
  DecodeRequest no_mask = request(3, 4, {});
  no_mask.model.mask_token = -1;
  std::string msg = test::error_message<Error>([&] { decoder_->start(no_mask); });
  EXPECT_NE(msg.find("the model has no mask token"), std::string::npos) << msg;
  // decoder.mask_token designates one.
  Config config = test::plugin_config();
  config.set("decoder.mask_token", "13", ConfigSource::CommandLine, "test");
  DecodeRun r = drive(*host_->create_decoder("diffusion", config)->start(no_mask), confident());
  EXPECT_EQ(r.steps[0].tokens.back(), 13);
  config.set("decoder.mask_token", "99", ConfigSource::CommandLine, "test");
  msg = test::error_message<ConfigError>([&] { host_->create_decoder("diffusion", config)->start(no_mask); });
  EXPECT_NE(msg.find("decoder.mask_token 99 is outside the vocabulary"), std::string::npos) << msg;

  DecodeRequest unshifted = request(3, 4, {});
  unshifted.model.diffusion.shift_logits = false;
  msg = test::error_message<Error>([&] { decoder_->start(unshifted); });
  EXPECT_NE(msg.find("shift_logits = false"), std::string::npos) << msg;

  DecodeRequest no_facts = request(3, 4, {});
  no_facts.model = ModelFacts{};
  msg = test::error_message<Error>([&] { decoder_->start(no_facts); });
  EXPECT_NE(msg.find("no model facts"), std::string::npos) << msg;
  EXPECT_THROW(decoder_->start(request(0, 4, {})), Error);
  EXPECT_THROW(decoder_->start(request(3, 0, {})), Error);
}

}  // namespace
}  // namespace bitrun
