// The scheduler without HTTP: requests from several threads share the engine and decode what each decodes alone;
// at most max_parallel run and max_queue wait, beyond that submit() refuses; cancelling (or dropping a handle)
// frees the sequence and lets a waiting request in; shutdown ends everything; an engine failure reaches every
// running request. Uses stories260K (for the engine's model) and the decoder-ar plugin.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

#include "bitrun/config/config.hpp"
#include "bitrun/engine/engine.hpp"
#include "bitrun/base/error.hpp"
#include "bitrun/model/model.hpp"
#include "bitrun/plugin/plugin_host.hpp"
#include "bitrun/engine/scheduler.hpp"
#include "bitrun/tokenizer/tokenizer.hpp"
#include "test_support.hpp"

namespace bitrun {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Emits token 5 every step at position 0 (never runs out of context) until `count` tokens, forever when 0.
class FixedSession : public DecodeSession {
 public:
  explicit FixedSession(int count, bool bad_step = false) : count_(count), bad_(bad_step) {}
  StepRequest next_step() override {
    StepRequest s;
    s.tokens = {1};
    s.position = bad_ ? 1000000 : 0;   // a position outside any cache: the engine step throws
    s.logit_rows = {0};
    return s;
  }
  std::vector<std::int32_t> consume(const StepLogits&) override {
    if (count_ > 0 && ++made_ >= count_) finish_ = FinishReason::Length;
    return {5};
  }
  FinishReason finished() const override { return finish_; }

 private:
  int count_, made_ = 0;
  bool bad_;
  FinishReason finish_ = FinishReason::None;
};

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path model = test::shared_path("models/stories260K.gguf");
    if (!fs::exists(model)) GTEST_SKIP() << model << " not found (set BITRUN_SHARED_DIR)";
    static PluginHost host({BITRUN_TEST_PLUGIN_DIR}, detect_cpu());
    backend_ = host.create_backend(host.choose_backend("auto"), 2);
    model_ = Model::load(model, *backend_);
    decoder_ = host.create_decoder("ar", test::plugin_config());
  }

  DecodeRequest request(const std::string& prompt, std::int32_t max_tokens) {
    DecodeRequest r;
    r.prompt = model_->tokenizer().encode(prompt, true, false);
    r.max_tokens = max_tokens;
    r.context_size = 256;
    r.end_tokens = {model_->tokenizer().vocab().eos};
    return r;
  }

  // Everything a handle receives until it finishes.
  static Scheduler::Update drain(Scheduler::Handle& h) {
    Scheduler::Update all;
    const auto give_up = Clock::now() + 30s;
    while (all.finish == FinishReason::None && Clock::now() < give_up) h.wait(all, Clock::now() + 100ms);
    return all;
  }

  static bool eventually(const std::function<bool()>& condition) {
    const auto give_up = Clock::now() + 10s;
    while (!condition()) {
      if (Clock::now() > give_up) return false;
      std::this_thread::sleep_for(5ms);
    }
    return true;
  }

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Decoder> decoder_;
};

TEST_F(SchedulerTest, ConcurrentSubmittersGetWhatEachDecodesAlone) {
  const std::vector<std::string> prompts = {"Once upon a time", "The little dog", "Lily and Ben", "One day"};
  std::vector<std::vector<std::int32_t>> alone;
  for (const auto& p : prompts) {
    Engine engine(*model_);
    std::vector<std::int32_t> out;
    engine.add(decoder_->start(request(p, 30)), 256,
               [&](Engine::SequenceId, const std::vector<std::int32_t>& t) { out.insert(out.end(), t.begin(), t.end()); });
    while (engine.step()) {
    }
    alone.push_back(out);
  }

  Scheduler scheduler(*model_, SchedulerOptions{4, 4});
  std::vector<std::vector<std::int32_t>> got(prompts.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < prompts.size(); ++i)
    threads.emplace_back([&, i] {
      Scheduler::Handle h = scheduler.submit(decoder_->start(request(prompts[i], 30)), 256, 4);
      Scheduler::Update u = drain(h);
      EXPECT_EQ(u.finish, FinishReason::Length);
      got[i] = u.tokens;
    });
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(got[i], alone[i]) << prompts[i];

  const SchedulerStats s = scheduler.stats();
  EXPECT_EQ(s.submitted, 4u);
  EXPECT_EQ(s.finished, 4u);
  EXPECT_EQ(s.generated_tokens, 120u);
  EXPECT_EQ(s.prompt_tokens, 16u);
  EXPECT_EQ(s.running + s.waiting, 0u);
  EXPECT_LT(s.steps, 120u) << "concurrent requests must share steps";
}

TEST_F(SchedulerTest, LogprobsArriveWithTheirTokens) {
  Scheduler scheduler(*model_, SchedulerOptions{2, 0});
  DecodeRequest r = request("Once upon a time", 8);
  r.logprobs = 3;
  Scheduler::Handle h = scheduler.submit(decoder_->start(r), 256, r.prompt.size());
  Scheduler::Update u = drain(h);
  ASSERT_EQ(u.tokens.size(), 8u);
  ASSERT_EQ(u.logprobs.size(), 8u);
  for (std::size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(u.logprobs[i].token, u.tokens[i]);
    EXPECT_EQ(u.logprobs[i].top.size(), 3u);
  }
}

TEST_F(SchedulerTest, QueueIsBoundedAndCancellingLetsTheNextOneIn) {
  Scheduler scheduler(*model_, SchedulerOptions{2, 1});
  Scheduler::Handle a = scheduler.submit(std::make_unique<FixedSession>(0), 64, 1);
  Scheduler::Handle b = scheduler.submit(std::make_unique<FixedSession>(0), 64, 1);
  Scheduler::Handle c = scheduler.submit(std::make_unique<FixedSession>(0), 64, 1);
  EXPECT_THROW(scheduler.submit(std::make_unique<FixedSession>(0), 64, 1), SchedulerFull);
  ASSERT_TRUE(eventually([&] { return scheduler.stats().running == 2; }));
  EXPECT_EQ(scheduler.stats().waiting, 1u);
  EXPECT_EQ(scheduler.stats().rejected, 1u);

  a.cancel();
  Scheduler::Update ua = drain(a);
  EXPECT_EQ(ua.finish, FinishReason::Cancelled);
  EXPECT_FALSE(ua.tokens.empty());
  // c takes a's slot.
  ASSERT_TRUE(eventually([&] { auto s = scheduler.stats(); return s.running == 2 && s.waiting == 0; }));
  Scheduler::Update uc;
  ASSERT_TRUE(c.wait(uc, Clock::now() + 10s));
  EXPECT_FALSE(uc.tokens.empty());

  // Dropping a handle cancels its request.
  { Scheduler::Handle gone = std::move(b); }
  ASSERT_TRUE(eventually([&] { return scheduler.stats().running == 1; }));
  EXPECT_EQ(scheduler.stats().cancelled, 2u);
  Scheduler::Handle d = scheduler.submit(std::make_unique<FixedSession>(3), 64, 1);
  EXPECT_EQ(drain(d).tokens, (std::vector<std::int32_t>{5, 5, 5}));
}

TEST_F(SchedulerTest, AWaitingRequestCancelsAtOnce) {
  Scheduler scheduler(*model_, SchedulerOptions{1, 4});
  Scheduler::Handle running = scheduler.submit(std::make_unique<FixedSession>(0), 64, 1);
  Scheduler::Handle waiting = scheduler.submit(std::make_unique<FixedSession>(0), 64, 1);
  ASSERT_TRUE(eventually([&] { return scheduler.stats().running == 1; }));
  waiting.cancel();
  Scheduler::Update u;
  ASSERT_TRUE(waiting.wait(u, Clock::now() + 1s));
  EXPECT_EQ(u.finish, FinishReason::Cancelled);
  EXPECT_TRUE(u.tokens.empty());
  EXPECT_EQ(scheduler.stats().waiting, 0u);
  // Nothing more arrives after the finish.
  EXPECT_FALSE(waiting.wait(u, Clock::now() + 50ms));
}

// A caller that has what it wanted (a stop string in the text) ends the request with stop(): it finishes as Stop
// and counts as finished, while cancel() counts as cancelled - running or still waiting.
TEST_F(SchedulerTest, StoppingARequestCountsItAsFinishedNotCancelled) {
  Scheduler scheduler(*model_, SchedulerOptions{1, 4});
  Scheduler::Handle running = scheduler.submit(std::make_unique<FixedSession>(0), 64, 1);
  Scheduler::Handle waiting = scheduler.submit(std::make_unique<FixedSession>(0), 64, 1);
  Scheduler::Handle cancelled = scheduler.submit(std::make_unique<FixedSession>(0), 64, 1);
  Scheduler::Update first;
  ASSERT_TRUE(running.wait(first, Clock::now() + 10s));
  running.stop();
  running.stop();     // idempotent
  running.cancel();   // after stop() (a handle's destructor does this): still a stop
  Scheduler::Update u = drain(running);
  EXPECT_EQ(u.finish, FinishReason::Stop);
  waiting.stop();
  EXPECT_EQ(drain(waiting).finish, FinishReason::Stop);
  ASSERT_TRUE(cancelled.wait(first, Clock::now() + 10s));   // admitted in the freed slot, decoding
  cancelled.cancel();
  EXPECT_EQ(drain(cancelled).finish, FinishReason::Cancelled);
  const SchedulerStats stats = scheduler.stats();
  EXPECT_EQ(stats.finished, 2u);
  EXPECT_EQ(stats.cancelled, 1u);
}

TEST_F(SchedulerTest, ShutdownEndsEverythingAndRefusesNewRequests) {
  auto scheduler = std::make_unique<Scheduler>(*model_, SchedulerOptions{1, 2});
  Scheduler::Handle running = scheduler->submit(std::make_unique<FixedSession>(0), 64, 1);
  Scheduler::Handle waiting = scheduler->submit(std::make_unique<FixedSession>(0), 64, 1);
  ASSERT_TRUE(eventually([&] { return scheduler->stats().running == 1; }));
  scheduler->shutdown();
  for (auto* h : {&running, &waiting}) {
    Scheduler::Update u = drain(*h);
    EXPECT_EQ(u.finish, FinishReason::Cancelled);
    EXPECT_NE(u.error.find("shutting down"), std::string::npos) << u.error;
  }
  EXPECT_THROW(scheduler->submit(std::make_unique<FixedSession>(1), 64, 1), SchedulerStopped);
  // Handles may outlive the scheduler: cancelling them then is harmless.
  scheduler.reset();
  running.cancel();
}

TEST_F(SchedulerTest, AFailingRequestEndsAloneWithItsMessage) {
  Scheduler scheduler(*model_, SchedulerOptions{2, 2});
  Scheduler::Handle good = scheduler.submit(std::make_unique<FixedSession>(3), 64, 1);
  Scheduler::Handle bad = scheduler.submit(std::make_unique<FixedSession>(0, /*bad_step=*/true), 64, 1);
  Scheduler::Update u = drain(bad);
  EXPECT_EQ(u.finish, FinishReason::Error);
  EXPECT_NE(u.error.find("in a context of 64"), std::string::npos) << u.error;
  // The request batched with it is not affected.
  u = drain(good);
  EXPECT_EQ(u.finish, FinishReason::Length);
  EXPECT_EQ(u.tokens, (std::vector<std::int32_t>{5, 5, 5}));
  EXPECT_EQ(scheduler.stats().failed, 1u);
  EXPECT_EQ(scheduler.stats().finished, 1u);
  // The scheduler keeps serving.
  Scheduler::Handle after = scheduler.submit(std::make_unique<FixedSession>(2), 64, 1);
  EXPECT_EQ(drain(after).finish, FinishReason::Length);
}

}  // namespace
}  // namespace bitrun
