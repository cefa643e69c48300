// The engine: several sequences share one forward per step (continuous batching) and decode exactly what each
// would alone; max_tokens is exact; cancelling frees a sequence without disturbing the others; block-causal
// attention and the commit pass of block diffusion leave exact K/V; the prefix pool never mixes attention
// contracts. Uses stories260K (with a designated mask token for diffusion) and the decoder plugins.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>

#include "bitrun/config/config.hpp"
#include "bitrun/engine/decode_request.hpp"
#include "bitrun/engine/engine.hpp"
#include "bitrun/base/error.hpp"
#include "bitrun/model/model.hpp"
#include "bitrun/plugin/plugin_host.hpp"
#include "bitrun/tokenizer/tokenizer.hpp"
#include "bitrun/model/transformer.hpp"
#include "test_support.hpp"

namespace bitrun {
namespace {

namespace fs = std::filesystem;

constexpr std::int32_t kMask = 0;   // stories260K has no mask token: <unk> is designated (decoder.mask_token)

// Asks for one given step, keeps its logits, then finishes.
class OneStep final : public DecodeSession {
 public:
  explicit OneStep(StepRequest step) : step_(std::move(step)) {}
  StepRequest next_step() override { return step_; }
  std::vector<std::int32_t> consume(const StepLogits& l) override {
    logits.assign(l.data.begin(), l.data.end());
    done_ = true;
    return {};
  }
  FinishReason finished() const override { return done_ ? FinishReason::Stop : FinishReason::None; }
  std::vector<float> logits;

 private:
  StepRequest step_;
  bool done_ = false;
};

// Forwards to a session and records the steps it asks for.
class Recording final : public DecodeSession {
 public:
  explicit Recording(std::unique_ptr<DecodeSession> inner) : inner_(std::move(inner)) {}
  StepRequest next_step() override {
    steps.push_back(inner_->next_step());
    return steps.back();
  }
  std::vector<std::int32_t> consume(const StepLogits& l) override { return inner_->consume(l); }
  FinishReason finished() const override { return inner_->finished(); }
  std::vector<StepRequest> steps;

 private:
  std::unique_ptr<DecodeSession> inner_;
};

// What the cache stores for positions [0, n) of every layer, as bytes: K and V codes, and an int8 cache's scales.
std::vector<std::uint8_t> kv_snapshot(const KvCache& cache, const ModelHparams& hp, std::int64_t n) {
  std::vector<std::uint8_t> out;
  auto append = [&](const void* data, std::int64_t bytes) {
    const auto* b = static_cast<const std::uint8_t*>(data);
    out.insert(out.end(), b, b + bytes);
  };
  for (std::int64_t l = 0; l < hp.n_layer; ++l) {
    const KvLayerView view = cache.layer(l);
    for (const void* base : {view.k, view.v}) append(base, n * cache.row_size() * kv_value_bytes(view.type));
    if (view.type == KvCacheType::Int8)
      for (const float* scales : {view.k_scale, view.v_scale})
        append(scales, n * hp.n_head_kv * static_cast<std::int64_t>(sizeof(float)));
  }
  return out;
}

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path model = test::shared_path("models/stories260K.gguf");
    if (!fs::exists(model)) GTEST_SKIP() << model << " not found (set BITRUN_SHARED_DIR)";
    static PluginHost host({BITRUN_TEST_PLUGIN_DIR}, detect_cpu());
    host_ = &host;
    backend_ = host.create_backend(host.choose_backend("auto"), 2);
    model_ = Model::load(model, *backend_);
    decoder_ = host.create_decoder("ar", test::plugin_config());
    Config config = test::plugin_config();
    config.set("decoder.mask_token", std::to_string(kMask), ConfigSource::CommandLine, "test");
    diffusion_ = host.create_decoder("diffusion", config);
  }

  std::unique_ptr<DecodeSession> session(const std::string& prompt, std::int32_t max_tokens) {
    DecodeRequest r;
    r.prompt = model_->tokenizer().encode(prompt, true, false);
    r.max_tokens = max_tokens;
    r.context_size = 256;
    r.end_tokens = {model_->tokenizer().vocab().eos};
    return decoder_->start(r);
  }

  // Decodes each prompt alone, in its own engine.
  std::vector<std::int32_t> alone(const std::string& prompt, std::int32_t max_tokens) {
    Engine engine(*model_);
    std::vector<std::int32_t> out;
    engine.add(session(prompt, max_tokens), 256,
               [&](Engine::SequenceId, const std::vector<std::int32_t>& t) { out.insert(out.end(), t.begin(), t.end()); });
    while (engine.step()) {
    }
    return out;
  }

  std::unique_ptr<DecodeSession> diffusion(const std::string& prompt, std::int32_t max_tokens,
                                           std::map<std::string, std::string> options) {
    DecodeRequest r;
    r.prompt = model_->tokenizer().encode(prompt, true, false);
    r.max_tokens = max_tokens;
    r.context_size = 256;
    r.decoder_options = std::move(options);
    r.model = model_facts(*model_);   // no end tokens: every run decodes max_tokens
    return diffusion_->start(r);
  }

  // Decodes one session in its own engine; also reports the rows of its first step.
  std::vector<std::int32_t> alone(std::unique_ptr<DecodeSession> s, std::int64_t* first_rows = nullptr) {
    Engine engine(*model_);
    std::vector<std::int32_t> out;
    engine.add(std::move(s), 256,
               [&](Engine::SequenceId, const std::vector<std::int32_t>& t) { out.insert(out.end(), t.begin(), t.end()); });
    engine.step();
    if (first_rows) *first_rows = engine.last_step_rows();
    while (engine.step()) {
    }
    return out;
  }

  // The logits of every row of one step run alone.
  std::vector<float> step_logits(StepRequest step) {
    for (std::int32_t i = 0; i < static_cast<std::int32_t>(step.tokens.size()); ++i) step.logit_rows.push_back(i);
    Engine engine(*model_);
    auto s = std::make_unique<OneStep>(std::move(step));
    OneStep* one = s.get();
    engine.add(std::move(s), 64, nullptr);
    engine.step();
    return one->logits;
  }

  PluginHost* host_ = nullptr;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Decoder> decoder_;
  std::unique_ptr<Decoder> diffusion_;
};

TEST_F(EngineTest, BatchedSequencesDecodeWhatEachDecodesAlone) {
  const std::vector<std::string> prompts = {"", "Once upon a time", "The little dog", "Lily and Ben went to the park"};
  std::map<Engine::SequenceId, std::vector<std::int32_t>> got;
  Engine engine(*model_);
  std::vector<Engine::SequenceId> ids;
  for (const auto& p : prompts)
    ids.push_back(engine.add(session(p, 40), 256, [&](Engine::SequenceId id, const std::vector<std::int32_t>& t) {
      got[id].insert(got[id].end(), t.begin(), t.end());
    }));
  int steps = 0;
  while (engine.step()) {
    if (++steps == 2) {
      EXPECT_EQ(engine.last_step_rows(), 4);   // after the prefills: one row per sequence
    }
  }
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(got[ids[i]], alone(prompts[i], 40)) << "prompt '" << prompts[i] << "'";
    EXPECT_EQ(engine.finish_reason(ids[i]), FinishReason::Length);
  }
  // From BOS alone: the golden llama2.c start.
  EXPECT_EQ(std::vector<std::int32_t>(got[ids[0]].begin(), got[ids[0]].begin() + 4),
            (std::vector<std::int32_t>{403, 407, 261, 378}));
}

TEST_F(EngineTest, MaxTokensIsExactAndCancelFreesOnlyThatSequence) {
  Engine engine(*model_);
  std::map<Engine::SequenceId, int> count;
  auto sink = [&](Engine::SequenceId id, const std::vector<std::int32_t>& t) { count[id] += static_cast<int>(t.size()); };
  const auto a = engine.add(session("Once upon a time", 7), 256, sink);
  const auto b = engine.add(session("The little dog", 100), 256, sink);
  const auto c = engine.add(session("Lily", 30), 256, sink);
  for (int i = 0; i < 3; ++i) engine.step();
  engine.cancel(b);
  EXPECT_EQ(engine.finish_reason(b), FinishReason::Cancelled);
  EXPECT_EQ(engine.active(), 2u);
  engine.step();
  EXPECT_EQ(engine.last_step_rows(), 2);   // the cancelled sequence no longer takes a row
  while (engine.step()) {
  }
  EXPECT_EQ(count[a], 7);
  EXPECT_EQ(engine.finish_reason(a), FinishReason::Length);
  EXPECT_EQ(count[b], 3);
  EXPECT_EQ(count[c], 30);
  EXPECT_EQ(alone("Lily", 30).size(), 30u);
  engine.forget(a);
  EXPECT_THROW(engine.finish_reason(a), Error);
  EXPECT_FALSE(engine.step());
}

// A session that throws from consume() after `ok` steps, wrapping a real one.
class ThrowsAfter final : public DecodeSession {
 public:
  ThrowsAfter(std::unique_ptr<DecodeSession> inner, int ok) : inner_(std::move(inner)), ok_(ok) {}
  StepRequest next_step() override { return inner_->next_step(); }
  std::vector<std::int32_t> consume(const StepLogits& l) override {
    if (ok_-- == 0) throw Error("the decoder broke");
    return inner_->consume(l);
  }
  FinishReason finished() const override { return inner_->finished(); }

 private:
  std::unique_ptr<DecodeSession> inner_;
  int ok_;
};

TEST_F(EngineTest, AFailingSessionEndsAloneAndTheOthersDecodeAsAlone) {
  Engine engine(*model_);
  std::map<Engine::SequenceId, std::vector<std::int32_t>> got;
  auto sink = [&](Engine::SequenceId id, const std::vector<std::int32_t>& t) {
    got[id].insert(got[id].end(), t.begin(), t.end());
  };
  const auto good = engine.add(session("Once upon a time", 20), 256, sink);
  const auto thrower = engine.add(std::make_unique<ThrowsAfter>(session("The little dog", 20), 3), 256, sink);
  StepRequest outside;   // rows past the end of its 16-position cache: an invalid step
  outside.tokens = {1, 2};
  outside.position = 15;
  outside.logit_rows = {1};
  const auto invalid = engine.add(std::make_unique<OneStep>(outside), 16, sink);
  while (engine.step()) {
  }
  EXPECT_EQ(engine.finish_reason(good), FinishReason::Length);
  EXPECT_EQ(got[good], alone("Once upon a time", 20));
  EXPECT_TRUE(engine.error(good).empty());
  EXPECT_EQ(engine.finish_reason(thrower), FinishReason::Error);
  EXPECT_EQ(engine.error(thrower), "the decoder broke");
  EXPECT_EQ(got[thrower].size(), 3u);
  EXPECT_EQ(engine.finish_reason(invalid), FinishReason::Error);
  EXPECT_NE(engine.error(invalid).find("in a context of 16"), std::string::npos) << engine.error(invalid);
}

TEST_F(EngineTest, APromptPrefixIsReusedAndGivesTheSameTokens) {
  Engine engine(*model_);
  std::map<Engine::SequenceId, std::vector<std::int32_t>> got;
  auto sink = [&](Engine::SequenceId id, const std::vector<std::int32_t>& t) {
    got[id].insert(got[id].end(), t.begin(), t.end());
  };
  const std::string first = "Lily and Ben went to the park to play", second = "Lily and Ben went to the shop";
  const auto a = engine.add(session(first, 20), 256, sink);
  while (engine.step()) {
  }
  EXPECT_EQ(engine.reused_positions(), 0);
  // The same prompt again: everything but the last prompt token comes from the pool.
  const auto b = engine.add(session(first, 20), 256, sink);
  engine.step();
  EXPECT_EQ(engine.last_step_rows(), 1);
  const auto prompt_len = static_cast<std::int64_t>(model_->tokenizer().encode(first, true, false).size());
  EXPECT_EQ(engine.reused_positions(), prompt_len - 1);
  while (engine.step()) {
  }
  EXPECT_EQ(got[b], got[a]);
  // A different ending shares only the common beginning, and decodes what a fresh engine decodes.
  const std::int64_t before = engine.reused_positions();
  const auto c = engine.add(session(second, 20), 256, sink);
  while (engine.step()) {
  }
  const auto p1 = model_->tokenizer().encode(first, true, false), p2 = model_->tokenizer().encode(second, true, false);
  std::int64_t common = 0;
  while (p1[static_cast<std::size_t>(common)] == p2[static_cast<std::size_t>(common)]) ++common;
  EXPECT_EQ(engine.reused_positions() - before, common);
  EXPECT_EQ(got[c], alone(second, 20));
}

TEST_F(EngineTest, AnInt8KvEngineDecodesWithInt8CachesAndReusesTheirPrefixes) {
  Engine engine(*model_, 4, KvCacheType::Int8);   // the model is the same; the engine's caches are int8
  std::map<Engine::SequenceId, std::vector<std::int32_t>> got;
  auto sink = [&](Engine::SequenceId id, const std::vector<std::int32_t>& t) {
    got[id].insert(got[id].end(), t.begin(), t.end());
  };
  const std::string prompt = "Lily and Ben went to the park to play";
  const auto a = engine.add(session(prompt, 20), 256, sink);
  EXPECT_EQ(engine.cache(a).type(), KvCacheType::Int8);
  while (engine.step()) {
  }
  // The same prompt again comes from the pool (int8 rows into an int8 cache) and decodes the same tokens.
  const auto b = engine.add(session(prompt, 20), 256, sink);
  while (engine.step()) {
  }
  EXPECT_GT(engine.stats(b).reused, 0);
  EXPECT_EQ(got[b], got[a]);
  ASSERT_EQ(got[a].size(), 20u);
}

TEST_F(EngineTest, LogprobsReachTheSink) {
  DecodeRequest r;
  r.prompt = model_->tokenizer().encode("Once upon a time", true, false);
  r.max_tokens = 6;
  r.context_size = 64;
  r.logprobs = 3;
  Engine engine(*model_);
  int seen = 0;
  engine.add(decoder_->start(r), 64, [&](Engine::SequenceId, const std::vector<std::int32_t>& t) {
    ASSERT_EQ(engine.sink_logprobs().size(), t.size());
    const TokenLogprob& lp = engine.sink_logprobs()[0];
    EXPECT_EQ(lp.token, t[0]);
    ASSERT_EQ(lp.top.size(), 3u);
    EXPECT_EQ(lp.top[0].first, t[0]);   // greedy: the chosen token is the most likely one
    EXPECT_LE(lp.logprob, 0.0f);
    EXPECT_GE(lp.top[0].second, lp.top[1].second);
    ++seen;
  });
  while (engine.step()) {
  }
  EXPECT_EQ(seen, 6);
}

TEST_F(EngineTest, ASinkCanCancelItsOwnSequence) {
  Engine engine(*model_);
  int received = 0;
  Engine::SequenceId id = 0;
  id = engine.add(session("Once upon a time", 50), 256, [&](Engine::SequenceId, const std::vector<std::int32_t>& t) {
    received += static_cast<int>(t.size());
    if (received == 5) engine.cancel(id);
  });
  while (engine.step()) {
  }
  EXPECT_EQ(received, 5);
  EXPECT_EQ(engine.finish_reason(id), FinishReason::Cancelled);
}

TEST_F(EngineTest, StatsCountForwardsRowsAndTokensPerSequence) {
  Engine engine(*model_);
  const auto prompt_len = static_cast<std::int64_t>(model_->tokenizer().encode("Once upon a time", true, false).size());
  const auto ar = engine.add(session("Once upon a time", 7), 256, nullptr);
  const auto dlm = engine.add(diffusion("Once upon a time", 12, {{"mode", "greedy"}, {"block_size", "8"}}), 256, nullptr);
  while (engine.step()) {
  }
  const SequenceStats& a = engine.stats(ar);
  EXPECT_EQ(a.forwards, 7);   // the prompt's forward gives the first token, then one per token
  EXPECT_EQ(a.rows, prompt_len + 6);
  EXPECT_EQ(a.tokens, 7);
  EXPECT_DOUBLE_EQ(a.tokens_per_forward(), 1.0);
  const SequenceStats& d = engine.stats(dlm);
  EXPECT_EQ(d.tokens, 12);
  EXPECT_GT(d.tokens_per_forward(), 2.0);   // greedy fills a sub-block per forward
  EXPECT_EQ(d.rows, 8 * d.forwards);   // every step is one block of 8 rows
  EXPECT_THROW(engine.stats(99), Error);
}

TEST_F(EngineTest, BlockCausalRowsSeeTheirWholeBlockAndEarlierBlocksOnly) {
  const std::vector<std::int32_t> tokens = {1, 403, 407, 261, 378, 432, 383, 286};
  auto block_causal = [&](std::vector<std::int32_t> t) {
    StepRequest s;
    s.tokens = std::move(t);
    s.attention = StepAttention::BlockCausal;
    s.block_size = 4;
    return step_logits(s);
  };
  const std::size_t vocab = static_cast<std::size_t>(model_->hparams().n_vocab);
  auto row = [&](const std::vector<float>& l, std::size_t r) {
    return std::vector<float>(l.begin() + static_cast<std::ptrdiff_t>(r * vocab),
                              l.begin() + static_cast<std::ptrdiff_t>((r + 1) * vocab));
  };
  const std::vector<float> base = block_causal(tokens);
  std::vector<std::int32_t> later = tokens, earlier = tokens;
  later[6] = 300;     // in the second block
  earlier[2] = 300;   // in the first block
  const std::vector<float> l = block_causal(later), e = block_causal(earlier);
  for (std::size_t r = 0; r < 4; ++r) EXPECT_EQ(row(l, r), row(base, r)) << "row " << r << " saw the next block";
  EXPECT_NE(row(l, 4), row(base, 4));   // row 4 sees position 6 of its own block
  EXPECT_NE(row(e, 0), row(base, 0));   // row 0 sees position 2 of its own block
  EXPECT_NE(row(e, 7), row(base, 7));   // and the second block sees the first
  StepRequest causal;
  causal.tokens = tokens;
  EXPECT_NE(row(step_logits(causal), 0), row(base, 0));

  Engine engine(*model_);
  StepRequest no_block;
  no_block.tokens = tokens;
  no_block.attention = StepAttention::BlockCausal;
  no_block.logit_rows = {7};
  // An invalid step ends that sequence with the reason (step() itself goes on).
  const auto bad = engine.add(std::make_unique<OneStep>(no_block), 64, nullptr);
  engine.step();
  EXPECT_EQ(engine.finish_reason(bad), FinishReason::Error);
  EXPECT_NE(engine.error(bad).find("needs a block size"), std::string::npos) << engine.error(bad);
  StepRequest stale;
  stale.tokens = tokens;
  stale.attention = StepAttention::Bidirectional;
  stale.cached_until = 20;   // nothing is cached yet
  stale.logit_rows = {0};
  Engine engine2(*model_);
  const auto stale_id = engine2.add(std::make_unique<OneStep>(stale), 64, nullptr);
  engine2.step();
  EXPECT_EQ(engine2.finish_reason(stale_id), FinishReason::Error);
  EXPECT_NE(engine2.error(stale_id).find("cached_until 20"), std::string::npos) << engine2.error(stale_id);
}

TEST_F(EngineTest, ASubBlockStepAttendsToTheCachedRestOfItsBlock) {
  // A block written by a full step, then its first half re-run with cached_until = the block end: with unchanged
  // tokens the cached K/V are exact, so the rows must reproduce the full step's logits (they see positions 4..7).
  const std::vector<std::int32_t> tokens = {1, 403, 407, 261, 378, 432, 383, 286};
  class TwoSteps final : public DecodeSession {
   public:
    std::vector<StepRequest> steps;
    std::vector<std::vector<float>> logits;
    StepRequest next_step() override { return steps[logits.size()]; }
    std::vector<std::int32_t> consume(const StepLogits& l) override {
      logits.emplace_back(l.data.begin(), l.data.end());
      return {};
    }
    FinishReason finished() const override { return logits.size() == steps.size() ? FinishReason::Stop : FinishReason::None; }
  };
  auto s = std::make_unique<TwoSteps>();
  StepRequest full;
  full.tokens = tokens;
  full.attention = StepAttention::BlockCausal;
  full.block_size = 8;
  full.logit_rows = {0, 1, 2, 3};
  StepRequest sub;
  sub.tokens.assign(tokens.begin(), tokens.begin() + 4);
  sub.attention = StepAttention::Bidirectional;
  sub.cached_until = 8;
  sub.logit_rows = {0, 1, 2, 3};
  s->steps = {full, sub};
  TwoSteps* two = s.get();
  Engine engine(*model_);
  engine.add(std::move(s), 64, nullptr);
  while (engine.step()) {
  }
  ASSERT_EQ(two->logits.size(), 2u);
  EXPECT_EQ(two->logits[1], two->logits[0]);
  // Seeing only its own four rows gives other logits.
  StepRequest own;
  own.tokens = sub.tokens;
  own.attention = StepAttention::Bidirectional;
  EXPECT_NE(step_logits(own), two->logits[0]);
}

TEST_F(EngineTest, AfterACommitTheCacheHoldsTheKvOfAFreshBlockCausalForward) {
  for (const char* sub_block_cache : {"false", "true"}) {
    Engine engine(*model_);
    const std::string prompt = "Once upon a time there was a girl named Lily. She";
    auto rec = std::make_unique<Recording>(diffusion(
        prompt, 40,
        {{"mode", "iterative"}, {"threshold", "0.3"}, {"block_size", "8"}, {"sub_block_size", "4"},
         {"sub_block_cache", sub_block_cache}}));
    Recording* steps = rec.get();
    std::vector<std::int32_t> all = model_->tokenizer().encode(prompt, true, false);
    // No prefill (every later whole-block BlockCausal step is a commit); the first step spans several blocks.
    ASSERT_NE(all.size() % 8, 0u);
    ASSERT_GT(all.size(), 8u);
    const auto id = engine.add(std::move(rec), 256, [&](Engine::SequenceId, const std::vector<std::int32_t>& t) {
      all.insert(all.end(), t.begin(), t.end());
    });
    const ModelHparams& hp = model_->hparams();
    std::vector<std::uint8_t> before;   // the whole cache after the previous step
    int commits = 0;
    while (engine.step()) {
      if (engine.finish_reason(id) != FinishReason::None) break;
      const StepRequest& last = steps->steps.back();
      const auto end = last.position + static_cast<std::int32_t>(last.tokens.size());
      const bool commit = steps->steps.size() > 1 && last.attention == StepAttention::BlockCausal &&
                          last.logit_rows == std::vector<std::int32_t>{static_cast<std::int32_t>(last.tokens.size()) - 1};
      if (commit) {
        ++commits;
        ASSERT_EQ(std::count(last.tokens.begin(), last.tokens.end(), kMask), 0);
        KvCache fresh(*model_, 256);
        std::vector<ForwardRow> rows;
        for (std::int32_t p = 0; p < end; ++p)
          rows.push_back({all[static_cast<std::size_t>(p)], p, std::min(end, (p / 8 + 1) * 8), &fresh});
        std::vector<float> logits(static_cast<std::size_t>(model_->hparams().n_vocab));
        const std::int32_t last_row = end - 1;
        Transformer(*model_).forward(rows, std::span<const std::int32_t>(&last_row, 1), logits.data());
        const auto expected = kv_snapshot(fresh, hp, end);
        EXPECT_EQ(kv_snapshot(engine.cache(id), hp, end), expected) << "commit of block ending at " << end;
        // Before the commit the block's K/V came from inputs that still had masks.
        EXPECT_EQ(before.size(), expected.size());
        EXPECT_NE(before, expected);
      }
      before = kv_snapshot(engine.cache(id), hp, engine.cache(id).size());
    }
    EXPECT_GE(commits, 3) << "sub_block_cache " << sub_block_cache;
  }
}

TEST_F(EngineTest, ArAndDiffusionSequencesShareStepsAndDecodeWhatEachDecodesAlone) {
  auto make = [&](int which) -> std::unique_ptr<DecodeSession> {
    switch (which) {
      case 0: return session("Once upon a time", 20);
      case 1: return diffusion("The little dog", 20, {{"mode", "greedy"}, {"block_size", "8"}});
      case 2:
        return diffusion("Lily and Ben", 20, {{"mode", "iterative"}, {"threshold", "0.5"}, {"block_size", "8"},
                                              {"sub_block_size", "4"}, {"sub_block_cache", "true"}});
      default: return diffusion("Once upon", 20, {{"mode", "adaptive"}, {"block_size", "8"}});
    }
  };
  std::vector<std::vector<std::int32_t>> expected;
  std::int64_t first_rows_sum = 0;
  for (int i = 0; i < 4; ++i) {
    std::int64_t rows = 0;
    expected.push_back(alone(make(i), &rows));
    first_rows_sum += rows;
  }
  Engine engine(*model_);
  std::map<Engine::SequenceId, std::vector<std::int32_t>> got;
  std::vector<Engine::SequenceId> ids;
  for (int i = 0; i < 4; ++i)
    ids.push_back(engine.add(make(i), 256, [&](Engine::SequenceId id, const std::vector<std::int32_t>& t) {
      got[id].insert(got[id].end(), t.begin(), t.end());
    }));
  engine.step();
  EXPECT_EQ(engine.last_step_rows(), first_rows_sum);   // all four in one forward
  while (engine.step()) {
  }
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(got[ids[static_cast<std::size_t>(i)]], expected[static_cast<std::size_t>(i)]) << "sequence " << i;
    EXPECT_EQ(got[ids[static_cast<std::size_t>(i)]].size(), 20u);
  }
}

TEST_F(EngineTest, ThePrefixPoolIsNotSharedAcrossAttentionContracts) {
  const std::string prompt = "Lily and Ben went to the park to play";
  const auto len = static_cast<std::int64_t>(model_->tokenizer().encode(prompt, true, false).size());
  ASSERT_GT(len, 5);
  const std::map<std::string, std::string> block_causal{{"mode", "greedy"}, {"block_size", "4"}};
  Engine engine(*model_);
  std::map<Engine::SequenceId, std::vector<std::int32_t>> got;
  auto sink = [&](Engine::SequenceId id, const std::vector<std::int32_t>& t) {
    got[id].insert(got[id].end(), t.begin(), t.end());
  };
  auto run = [&](std::unique_ptr<DecodeSession> s) {
    const auto id = engine.add(std::move(s), 256, sink);
    while (engine.step()) {
    }
    return id;
  };
  run(session(prompt, 6));   // pools causal K/V of the prompt
  const auto d1 = run(diffusion(prompt, 10, block_causal));
  EXPECT_EQ(engine.stats(d1).reused, 0) << "block-causal decoding took causal K/V";
  const auto d2 = run(diffusion(prompt, 10, block_causal));
  EXPECT_EQ(engine.stats(d2).reused, (len - 1) / 4 * 4);   // whole blocks of d1's block-causal K/V
  EXPECT_GT(engine.stats(d2).reused, 0);
  EXPECT_EQ(got[d2], got[d1]);
  EXPECT_EQ(got[d1], alone(diffusion(prompt, 10, block_causal)));
  // The causal contract shares K/V with autoregressive decoding.
  Config config = test::plugin_config();
  config.set("decoder.mask_token", std::to_string(kMask), ConfigSource::CommandLine, "test");
  config.set("decoder.attention", "causal", ConfigSource::CommandLine, "test");
  auto causal_decoder = host_->create_decoder("diffusion", config);
  auto causal_session = [&] {
    DecodeRequest r;
    r.prompt = model_->tokenizer().encode(prompt, true, false);
    r.max_tokens = 10;
    r.context_size = 256;
    r.decoder_options = block_causal;
    r.model = model_facts(*model_);
    return causal_decoder->start(r);
  };
  const auto c = run(causal_session());
  EXPECT_EQ(engine.stats(c).reused, len - 1);
  EXPECT_EQ(got[c], alone(causal_session()));
}

TEST_F(EngineTest, DiffusionDecodesStories260KMechanicallyInEveryMode) {
  for (const char* contract : {"block-causal", "causal"})
    for (const char* mode : {"greedy", "iterative", "adaptive", "factor", "eb"}) {
      Config config = test::plugin_config();
      config.set("decoder.mask_token", std::to_string(kMask), ConfigSource::CommandLine, "test");
      config.set("decoder.attention", contract, ConfigSource::CommandLine, "test");
      DecodeRequest r;
      r.prompt = model_->tokenizer().encode("Once upon a time", true, false);
      r.max_tokens = 37;
      r.context_size = 256;
      r.decoder_options = {{"mode", mode}, {"block_size", "16"}, {"sub_block_size", "8"}, {"threshold", "0.7"}};
      r.model = model_facts(*model_);
      Engine engine(*model_);
      std::vector<std::int32_t> out;
      const auto id = engine.add(host_->create_decoder("diffusion", config)->start(r), 256,
                                 [&](Engine::SequenceId, const std::vector<std::int32_t>& t) {
                                   out.insert(out.end(), t.begin(), t.end());
                                 });
      while (engine.step()) {
      }
      const std::string what = std::string(contract) + " " + mode;
      EXPECT_EQ(out.size(), 37u) << what;
      EXPECT_EQ(std::count(out.begin(), out.end(), kMask), 0) << what;
      EXPECT_EQ(engine.finish_reason(id), FinishReason::Length) << what;
      const SequenceStats& st = engine.stats(id);
      EXPECT_EQ(st.tokens, 37) << what;
      EXPECT_GE(st.tokens_per_forward(), 1.0) << what;
      EXPECT_LE(st.forwards, 37 + 3) << what;   // at most one step per token, plus commits
      EXPECT_GE(st.rows, st.forwards) << what;
      if (std::string(mode) == "greedy") {
        EXPECT_GE(st.tokens_per_forward(), 4.0) << what;
      }
    }
}

}  // namespace
}  // namespace bitrun
