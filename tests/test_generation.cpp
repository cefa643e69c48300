// The generation pipeline the CLI and the HTTP server share: prepare_generation() turns each kind of prompt into a
// request with the configuration's settings and refuses what cannot fit; Generation turns the scheduled request's
// tokens into text, ends it at a stop string and reports the tokens and the time to the first one.
#include <gtest/gtest.h>

#include "bitrun/engine/decoder_set.hpp"
#include "bitrun/base/error.hpp"
#include "bitrun/engine/generation.hpp"
#include "bitrun/model/model.hpp"
#include "bitrun/tokenizer/tokenizer.hpp"
#include "test_support.hpp"

namespace bitrun {
namespace {

const Model* model() {
  static std::unique_ptr<Backend> backend;
  static std::unique_ptr<Model> m;
  if (!m && std::filesystem::exists(test::shared_path("models/stories260K.gguf"))) {
    backend = test::project_plugins().create_backend(test::project_plugins().choose_backend("auto"), 1);
    m = Model::load(test::shared_path("models/stories260K.gguf"), *backend);
  }
  return m.get();
}

class GenerationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!model()) GTEST_SKIP() << test::shared_path("models/stories260K.gguf") << " not found";
    config_.set_from_cli("sampling.temperature=0");
    config_.set_from_cli("context_size=64");
  }
  Config config_ = test::plugin_config();
};

TEST_F(GenerationTest, EachKindOfPromptBecomesARequestWithTheConfiguredSettings) {
  config_.set_from_cli("generation.stop=[\"The end\"]");
  GenerationPrompt text;
  text.text = "Once upon a time";
  PreparedGeneration g = prepare_generation(config_, *model(), text, 12);
  EXPECT_EQ(g.request.prompt, model()->tokenizer().encode("Once upon a time", true, true));
  EXPECT_EQ(g.request.max_tokens, 12);
  EXPECT_EQ(g.request.context_size, 64);
  EXPECT_EQ(g.request.sampling.temperature, 0.0f);
  EXPECT_TRUE(g.continuation);
  EXPECT_EQ(g.stops, (std::vector<std::string>{"The end"}));

  GenerationPrompt chat;
  chat.kind = GenerationPrompt::Kind::Chat;
  chat.messages = {{"user", "Hello"}};
  g = prepare_generation(config_, *model(), chat, 4);
  EXPECT_FALSE(g.continuation);   // an answer starts anew
  EXPECT_GT(g.request.prompt.size(), 1u);

  GenerationPrompt ids;
  ids.kind = GenerationPrompt::Kind::Tokens;
  ids.tokens = {1, 50, 300};
  EXPECT_EQ(prepare_generation(config_, *model(), ids, 4).request.prompt, ids.tokens);
}

TEST_F(GenerationTest, PromptsThatCannotBeDecodedAreErrorsNamingTheProblem) {
  GenerationPrompt ids;
  ids.kind = GenerationPrompt::Kind::Tokens;
  ids.tokens = {1, 100000};
  EXPECT_NE(test::error_message<Error>([&] { prepare_generation(config_, *model(), ids, 4); })
                .find("prompt[1] = 100000 is not a token id"),
            std::string::npos);
  ids.tokens.assign(64, 5);
  EXPECT_NE(test::error_message<Error>([&] { prepare_generation(config_, *model(), ids, 4); })
                .find("the prompt has 64 tokens but the context holds 64"),
            std::string::npos);
  ids.tokens.clear();
  EXPECT_NE(test::error_message<Error>([&] { prepare_generation(config_, *model(), ids, 4); }).find("empty"),
            std::string::npos);
  GenerationPrompt text;
  text.text = std::string(100000, 'a');   // refused before it is tokenized
  EXPECT_NE(test::error_message<Error>([&] { prepare_generation(config_, *model(), text, 4); })
                .find("the prompt is at least"),
            std::string::npos);
}

// With a worker thread (the server) and with the steps run by the reading thread (the CLI): the same text.
class GenerationSchedulerTest : public GenerationTest, public ::testing::WithParamInterface<bool> {};

TEST_P(GenerationSchedulerTest, TheTextEndsBeforeTheStopStringAndTheTokensAreKept) {
  DecoderSet decoders(test::project_plugins(), config_, "ar");
  Scheduler scheduler(*model(), GetParam() ? SchedulerOptions::single_client_in_caller_thread()
                                           : SchedulerOptions{1, 0});
  GenerationPrompt text;
  text.text = "Once upon a time";
  auto run = [&](std::vector<std::string> stops) {
    PreparedGeneration g = prepare_generation(config_, *model(), text, 24);
    Generation gen(scheduler.submit(decoders.start("", g.request), g.request.context_size, g.request.prompt.size()),
                   model()->tokenizer(), std::move(stops), g.continuation);
    Piece all = gen.collect();
    EXPECT_EQ(gen.outcome(), Outcome::Finished);
    EXPECT_GT(gen.seconds_to_first_token(), 0.0);
    EXPECT_LE(gen.seconds_to_first_token(), gen.seconds());
    EXPECT_EQ(gen.completion_tokens(), static_cast<std::int64_t>(gen.tokens().size()));
    return std::make_pair(all.text, gen.tokens());
  };
  const auto [full, full_tokens] = run({});
  ASSERT_EQ(full_tokens.size(), 24u);
  EXPECT_EQ(full, model()->tokenizer().decode(full_tokens).substr(0, full.size()));
  // Stop at the text's third word: what comes before it is all that is shown, and fewer tokens were kept.
  const std::size_t cut = full.find(' ', full.find(' ', 1) + 1);
  ASSERT_NE(cut, std::string::npos) << full;
  const std::string stop = full.substr(cut, 4);
  const auto [stopped, stopped_tokens] = run({stop});
  EXPECT_EQ(stopped, full.substr(0, full.find(stop)));
  EXPECT_LT(stopped_tokens.size(), full_tokens.size());
  // The greedy text is the same whichever thread runs the steps.
  static std::string first_full;
  if (first_full.empty()) first_full = full;
  EXPECT_EQ(full, first_full);
  // Shutting down cancels what is still waiting.
  PreparedGeneration g = prepare_generation(config_, *model(), text, 24);
  Generation pending(scheduler.submit(decoders.start("", g.request), g.request.context_size, g.request.prompt.size()),
                     model()->tokenizer(), {}, g.continuation);
  scheduler.shutdown();
  pending.collect();
  EXPECT_EQ(pending.outcome(), Outcome::ShuttingDown);
}

TEST_F(GenerationTest, TheCallerThreadSchedulerTakesOneRequestAndCountsAStopAsFinished) {
  SchedulerOptions two = SchedulerOptions::single_client_in_caller_thread();
  two.max_parallel = 2;
  EXPECT_THROW(Scheduler(*model(), two), ConfigError);
  DecoderSet decoders(test::project_plugins(), config_, "ar");
  Scheduler scheduler(*model(), SchedulerOptions::single_client_in_caller_thread());
  GenerationPrompt text;
  text.text = "Once upon a time";
  PreparedGeneration g = prepare_generation(config_, *model(), text, 24);
  Generation gen(scheduler.submit(decoders.start("", g.request), g.request.context_size, g.request.prompt.size()),
                 model()->tokenizer(), {" "}, g.continuation);   // the first space ends it
  gen.collect();
  ASSERT_EQ(gen.outcome(), Outcome::Finished);
  scheduler.shutdown();   // no step ran after the stop: shutdown applies it
  EXPECT_EQ(scheduler.stats().finished, 1u);
  EXPECT_EQ(scheduler.stats().cancelled, 0u);
}

INSTANTIATE_TEST_SUITE_P(Threads, GenerationSchedulerTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "InCallerThread" : "WorkerThread"; });

}  // namespace
}  // namespace bitrun
