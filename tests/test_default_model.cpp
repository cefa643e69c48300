// The built-in default model (models/default.gguf, tools/train-default-model): it loads as the ternary,
// diffusion-ready file the tool writes, and bitrun reproduces its golden greedy text, both through the core
// (reference kernels and every plugin backend) and through `bitrun generate` with no model configured; and
// `bitrun perplexity --logits-out`, which the tool uses to check bitrun against its PyTorch forward.
// Needs nothing from ../shared: the model is part of the repository.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "bitrun/config/config.hpp"
#include "bitrun/base/cpu_features.hpp"
#include "bitrun/engine/decode_request.hpp"
#include "bitrun/engine/engine.hpp"
#include "bitrun/gguf/gguf.hpp"
#include "bitrun/model/kv_cache.hpp"
#include "bitrun/model/model.hpp"
#include "bitrun/plugin/plugin_host.hpp"
#include "bitrun/engine/sampler.hpp"
#include "bitrun/tokenizer/tokenizer.hpp"
#include "bitrun/model/transformer.hpp"
#include "test_support.hpp"

namespace bitrun {
namespace {

const std::filesystem::path kModel = std::filesystem::path(BITRUN_SOURCE_DIR) / "models" / "default.gguf";

// Golden greedy continuation of kPrompt (recorded from bitrun; the training tool's PyTorch student gives the
// same tokens): ids after the prompt and the text they decode to, prompt included.
constexpr const char* kPrompt = "Once upon a time";
const std::vector<std::int32_t> kGoldenIds = {
    432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408, 419, 292, 411, 322,
    265, 282, 295, 433, 426, 385, 328, 432, 358, 263};
constexpr const char* kGoldenText =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she w";

std::vector<std::int32_t> greedy(const Model& model, std::vector<std::int32_t> ids, std::size_t n) {
  KvCache cache(model, static_cast<std::int64_t>(ids.size() + n));
  Transformer tf(model);
  std::vector<float> logits(static_cast<std::size_t>(model.hparams().n_vocab));
  std::vector<std::int32_t> out;
  std::vector<ForwardRow> rows;
  for (std::size_t i = 0; i < ids.size(); ++i)
    rows.push_back({ids[i], static_cast<std::int32_t>(i), static_cast<std::int32_t>(i + 1), &cache});
  std::vector<std::int32_t> last = {static_cast<std::int32_t>(rows.size() - 1)};
  tf.forward(rows, last, logits.data());
  while (out.size() < n) {
    const std::int32_t next = argmax(logits);
    out.push_back(next);
    const auto pos = static_cast<std::int32_t>(ids.size() + out.size() - 1);
    const std::vector<ForwardRow> row = {{next, pos, pos + 1, &cache}};
    const std::vector<std::int32_t> first = {0};
    tf.forward(row, first, logits.data());
  }
  return out;
}

TEST(DefaultModel, IsATernaryBlockDiffusionModelWithAMaskToken) {
  const GgufFile file = GgufFile::open(kModel);
  EXPECT_EQ(file.opt_string("general.architecture"), "bitnet-b1.58");
  EXPECT_EQ(file.opt_u64("tokenizer.ggml.mask_token_id"), 512u);
  EXPECT_EQ(file.opt_u64("diffusion.block_size"), 16u);
  EXPECT_EQ(file.opt_string("diffusion.attention"), "block-causal");
  EXPECT_EQ(file.opt_bool("diffusion.shift_logits"), true);
  for (const auto& t : file.tensors()) {
    const bool projection = (t.name.find("attn_") != std::string::npos || t.name.find("ffn_") != std::string::npos) &&
                            t.name.find("norm") == std::string::npos;
    if (projection) {
      EXPECT_EQ(t.type, GgmlType::I2_S) << t.name;
    }
  }

  auto backend = make_reference_backend({});
  auto model = Model::load(kModel, *backend);
  EXPECT_EQ(model->hparams().n_vocab, 513);
  EXPECT_EQ(model->mask_token(), 512);
  const Tokenizer& tok = model->tokenizer();
  EXPECT_EQ(tok.token_bytes(512, /*render_special=*/true), "|<MASK>|");
  EXPECT_EQ(tok.token_bytes(512), "");                                     // a control token: never shown as text
  EXPECT_EQ(tok.encode("|<MASK>|", false, /*parse_special=*/true), std::vector<std::int32_t>{512});
  EXPECT_NE(tok.encode("|<MASK>|", false, /*parse_special=*/false), std::vector<std::int32_t>{512});
}

// Runs a shell command; its exit status (pclose's) and everything it printed.
std::pair<int, std::string> run_shell(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return {-1, "popen failed for: " + command};
  std::string output;
  std::array<char, 4096> buf;
  while (std::size_t n = fread(buf.data(), 1, buf.size(), pipe)) output.append(buf.data(), n);
  return {pclose(pipe), output};
}

// The plugins stay loaded while models live.
PluginHost& plugin_host() {
  static PluginHost host({BITRUN_TEST_PLUGIN_DIR}, detect_cpu());
  return host;
}

// The reference kernels and every backend plugin the host discovers that can run on this CPU.
std::vector<std::unique_ptr<Backend>> runnable_backends() {
  PluginHost& host = plugin_host();
  std::vector<std::unique_ptr<Backend>> backends;
  backends.push_back(make_reference_backend({}));
  for (const PluginRecord& r : host.plugins())
    if (r.kind == PluginKind::Backend && r.usable() && r.score > 0)
      backends.push_back(host.create_backend(host.choose_backend(r.name), 2));
  return backends;
}

TEST(DefaultModel, GreedyTextIsGoldenOnEveryBackend) {
  const std::vector<std::unique_ptr<Backend>> backends = runnable_backends();
  for (const auto& backend : backends) {
    auto model = Model::load(kModel, *backend);
    const Tokenizer& tok = model->tokenizer();
    const std::vector<std::int32_t> prompt = tok.encode(kPrompt, /*add_bos=*/true, /*parse_special=*/false);
    const std::vector<std::int32_t> got = greedy(*model, prompt, kGoldenIds.size());
    EXPECT_EQ(got, kGoldenIds) << backend->name();
    std::vector<std::int32_t> all = prompt;
    all.insert(all.end(), got.begin(), got.end());
    EXPECT_EQ(tok.decode(all), kGoldenText) << backend->name();
  }
}

// Block diffusion in greedy mode through the engine and the decoder-diffusion plugin, with everything from the
// model's metadata (mask token 512, block size 16, block-causal contract): its golden continuation of the same
// prompt on every backend, filling 8-token sub-blocks in one forward each (here the same 32 tokens as AR; on
// other prompts greedy diffusion's text is poor, see docs/default-model.md); what is pinned is that bitrun
// decodes it the same way.
const std::vector<std::int32_t> kDiffusionGoldenIds = {
    432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408, 419, 292, 411, 322,
    265, 282, 295, 433, 426, 385, 328, 432, 358, 263};

// A decoder configured with greedy sampling and decoder.mode = `mode` (and `threshold` when given).
std::unique_ptr<Decoder> diffusion_decoder(const char* mode, const char* threshold = nullptr) {
  Config config = test::plugin_config();
  config.set("sampling.temperature", "0", ConfigSource::CommandLine, "test");
  config.set("decoder.mode", mode, ConfigSource::CommandLine, "test");
  if (threshold) config.set("decoder.threshold", threshold, ConfigSource::CommandLine, "test");
  return plugin_host().create_decoder("diffusion", config);
}

// One greedy request for `prompt` decoded through an engine; its tokens go to `out` when given. Fails the test if
// the sequence ends in an error.
SequenceStats decode(const Model& model, Decoder& decoder, const std::vector<std::int32_t>& prompt,
                     std::int64_t max_tokens, std::vector<std::int32_t>* out = nullptr) {
  Config greedy = test::plugin_config();
  greedy.set("sampling.temperature", "0", ConfigSource::CommandLine, "test");
  const DecodeRequest request = make_decode_request(greedy, model, prompt, max_tokens);
  Engine engine(model);
  const Engine::SequenceId id = engine.add(decoder.start(request), request.context_size,
                                           [&](Engine::SequenceId, const std::vector<std::int32_t>& t) {
                                             if (out) out->insert(out->end(), t.begin(), t.end());
                                           });
  while (engine.step()) {
  }
  EXPECT_NE(engine.finish_reason(id), FinishReason::Error) << engine.error(id);
  return engine.stats(id);
}

TEST(DefaultModel, DiffusionGreedyTextIsGoldenOnEveryBackend) {
  std::unique_ptr<Decoder> diffusion = diffusion_decoder("greedy");
  const std::vector<std::unique_ptr<Backend>> backends = runnable_backends();
  for (const auto& backend : backends) {
    auto model = Model::load(kModel, *backend);
    const std::vector<std::int32_t> prompt = model->tokenizer().encode(kPrompt, /*add_bos=*/true, false);
    std::vector<std::int32_t> got;
    const SequenceStats stats =
        decode(*model, *diffusion, prompt, static_cast<std::int64_t>(kDiffusionGoldenIds.size()), &got);
    EXPECT_EQ(got, kDiffusionGoldenIds) << backend->name();
    EXPECT_GT(static_cast<double>(stats.tokens) / static_cast<double>(stats.forwards), 4.0) << backend->name();
  }
}

// What makes block diffusion pay: the committed model is confident in parallel. Decoded greedily by the adaptive
// policy at threshold 0.9 (the decoder's defaults and the model's metadata otherwise), the fixed story prompts
// (tests/data/story-prompts.txt, the set docs/default-model.md and `bitrun bench --prompts` measure), 128 tokens
// each, take at least 3 tokens per forward on every backend (3.36 measured on avx512; the previous default model
// took 1.01). Greedy choice, so the figure cannot drift.
TEST(DefaultModel, AdaptiveDiffusionUnmasksAtLeastThreeTokensPerForward) {
  std::ifstream in(std::filesystem::path(BITRUN_SOURCE_DIR) / "tests" / "data" / "story-prompts.txt");
  std::vector<std::string> prompts;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) prompts.push_back(line);
  ASSERT_GE(prompts.size(), 20u);
  std::unique_ptr<Decoder> diffusion = diffusion_decoder("adaptive", "0.9");
  const std::vector<std::unique_ptr<Backend>> backends = runnable_backends();
  for (const auto& backend : backends) {
    auto model = Model::load(kModel, *backend);
    std::int64_t tokens = 0, forwards = 0;
    for (const std::string& text : prompts) {
      const std::vector<std::int32_t> prompt = model->tokenizer().encode(text, /*add_bos=*/true, false);
      const SequenceStats stats = decode(*model, *diffusion, prompt, 128);
      tokens += stats.tokens;
      forwards += stats.forwards;
    }
    EXPECT_GE(static_cast<double>(tokens) / static_cast<double>(forwards), 3.0)
        << backend->name() << ": " << tokens << " tokens in " << forwards << " forwards";
  }
}

// `bitrun generate` with no model anywhere in its configuration runs the built-in default model.
TEST(DefaultModel, GenerateUsesItWhenNoModelIsConfigured) {
  const std::string command = std::string("env -u BITRUN_MODEL -u BITRUN_CONFIG ") + BITRUN_EXE +
                              " generate -p \"" + kPrompt + "\" -n " + std::to_string(kGoldenIds.size()) +
                              " --set sampling.temperature=0 --log-level warn 2>&1";
  const auto [status, output] = run_shell(command);
  ASSERT_EQ(status, 0) << output;
  // generate prints the continuation only (its first piece without the SentencePiece space), as decode does.
  auto backend = make_reference_backend({});
  const std::string continuation = Model::load(kModel, *backend)->tokenizer().decode(kGoldenIds);
  EXPECT_EQ(output.substr(0, output.find('\n')), continuation) << output;
}

// `bitrun perplexity --logits-out` (how the training tool compares bitrun with its PyTorch forward): per line
// n, n ids starting with BOS, (n - 1) x n_vocab logits, whose NLL is the perplexity bitrun prints.
TEST(DefaultModel, PerplexityWritesTheLogitsItScored) {
  const auto dir = std::filesystem::temp_directory_path();
  const std::string text = (dir / "bitrun-default-model-lines.txt").string();
  const std::string dump = (dir / "bitrun-default-model-logits.f32").string();
  std::ofstream(text) << "Once upon a time, there was a cat.\n\nThe cat liked to sleep in the sun.\n";
  const std::string command = std::string(BITRUN_EXE) + " perplexity " + kModel.string() + " " + text +
                              " --logits-out " + dump + " --log-level warn 2>&1";
  const auto [status, output] = run_shell(command);
  ASSERT_EQ(status, 0) << output;

  std::ifstream in(dump, std::ios::binary);
  const std::int64_t n_vocab = 513;
  double nll = 0.0;
  std::int64_t tokens = 0, lines = 0;
  for (std::int32_t n; in.read(reinterpret_cast<char*>(&n), sizeof n); ++lines) {
    ASSERT_GE(n, 2);
    std::vector<std::int32_t> ids(static_cast<std::size_t>(n));
    std::vector<float> logits(static_cast<std::size_t>((n - 1) * n_vocab));
    in.read(reinterpret_cast<char*>(ids.data()), static_cast<std::streamsize>(ids.size() * sizeof(std::int32_t)));
    in.read(reinterpret_cast<char*>(logits.data()), static_cast<std::streamsize>(logits.size() * sizeof(float)));
    ASSERT_TRUE(in) << "truncated dump";
    EXPECT_EQ(ids[0], 1);   // BOS
    for (std::int32_t i = 0; i + 1 < n; ++i) {
      const std::span<const float> row(logits.data() + i * n_vocab, static_cast<std::size_t>(n_vocab));
      nll += log_sum_exp(row) - row[static_cast<std::size_t>(ids[static_cast<std::size_t>(i) + 1])];
      ++tokens;
    }
  }
  EXPECT_EQ(lines, 2);
  char expected[128];
  std::snprintf(expected, sizeof expected, "lines 2, predicted tokens %lld, mean NLL %.5f",
                static_cast<long long>(tokens), nll / static_cast<double>(tokens));
  EXPECT_NE(output.find(expected), std::string::npos) << output << " vs " << expected;
  std::filesystem::remove(text);
  std::filesystem::remove(dump);
}

}  // namespace
}  // namespace bitrun
