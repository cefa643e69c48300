// The engine: several sequences share one forward per step (continuous batching) and decode exactly what each
// would alone; max_tokens is exact; cancelling frees a sequence without disturbing the others. Uses stories260K
// and the decoder-ar plugin.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>

#include "bitrun/config.hpp"
#include "bitrun/engine.hpp"
#include "bitrun/error.hpp"
#include "bitrun/model.hpp"
#include "bitrun/plugin_host.hpp"
#include "bitrun/tokenizer.hpp"

namespace bitrun {
namespace {

namespace fs = std::filesystem;

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* env = std::getenv("BITRUN_SHARED_DIR");
    const fs::path model = (env ? fs::path(env) : fs::path(BITRUN_SOURCE_DIR) / ".." / "shared") / "models/stories260K.gguf";
    if (!fs::exists(model)) GTEST_SKIP() << model << " not found (set BITRUN_SHARED_DIR)";
    static PluginHost host({BITRUN_TEST_PLUGIN_DIR}, detect_cpu());
    backend_ = host.create_backend(host.choose_backend("auto"), 2);
    model_ = Model::load(model, *backend_);
    decoder_ = host.create_decoder("ar", Config());
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

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Decoder> decoder_;
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

}  // namespace
}  // namespace bitrun
