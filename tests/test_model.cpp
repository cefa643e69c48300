// The model loader and the reference forward pass against ground truth from other implementations:
// stories260K's golden greedy text (llama2.c), its perplexity (a float64 reference), and the fixtures that
// bitnet.cpp and llama.cpp wrote with the logits they computed. Needs ../shared; skips without it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <functional>
#include <algorithm>
#include <map>
#include <random>
#include <sstream>

#include "bitrun/model/architecture.hpp"
#include "bitrun/config/config.hpp"
#include "bitrun/model/convert.hpp"
#include "bitrun/engine/decode_request.hpp"
#include "bitrun/base/error.hpp"
#include "bitrun/gguf/gguf.hpp"
#include "bitrun/model/kv_cache.hpp"
#include "bitrun/model/model.hpp"
#include "bitrun/model/perplexity.hpp"
#include "bitrun/plugin/plugin_host.hpp"
#include "bitrun/engine/sampler.hpp"
#include "bitrun/model/synthetic_model.hpp"
#include "bitrun/tokenizer/tokenizer.hpp"
#include "bitrun/model/transformer.hpp"
#include "test_support.hpp"

namespace bitrun {
namespace {

namespace fs = std::filesystem;

fs::path shared_dir() {
  if (const char* env = std::getenv("BITRUN_SHARED_DIR")) return env;
  return fs::path(BITRUN_SOURCE_DIR) / ".." / "shared";
}

#define REQUIRE_SHARED(rel)                                                                          \
  const fs::path shared_file = shared_dir() / (rel);                                                 \
  if (!fs::exists(shared_file)) GTEST_SKIP() << shared_file << " not found (set BITRUN_SHARED_DIR)";

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::int32_t> parse_ids(const std::string& text) {
  std::vector<std::int32_t> ids;
  std::string cleaned;
  for (char c : text) cleaned += (c == '[' || c == ']' || c == ',') ? ' ' : c;
  std::istringstream in(cleaned);
  for (long v; in >> v;) ids.push_back(static_cast<std::int32_t>(v));
  return ids;
}

// Greedy continuation of `prompt`: one causal prefill, then one token per forward with a KV cache of `kv_cache`.
std::vector<std::int32_t> greedy(const Model& model, const std::vector<std::int32_t>& prompt, int steps,
                                 KvCacheType kv_cache = KvCacheType::F16) {
  KvCache cache(model, static_cast<std::int64_t>(prompt.size()) + steps, kv_cache);
  Transformer tf(model);
  std::vector<ForwardRow> rows;
  for (std::size_t i = 0; i < prompt.size(); ++i)
    rows.push_back({prompt[i], static_cast<std::int32_t>(i), static_cast<std::int32_t>(i + 1), &cache});
  std::vector<float> logits(static_cast<std::size_t>(model.hparams().n_vocab));
  std::int32_t last = static_cast<std::int32_t>(rows.size() - 1);
  tf.forward(rows, std::span<const std::int32_t>(&last, 1), logits.data());
  std::vector<std::int32_t> out;
  for (int s = 0; s < steps; ++s) {
    const std::int32_t next = argmax(logits);
    out.push_back(next);
    const auto pos = static_cast<std::int32_t>(prompt.size() + out.size() - 1);
    ForwardRow row{next, pos, pos + 1, &cache};
    const std::int32_t zero = 0;
    if (s + 1 < steps) tf.forward(std::span<const ForwardRow>(&row, 1), std::span<const std::int32_t>(&zero, 1), logits.data());
  }
  return out;
}

TEST(Stories260K, GreedyFromBosMatchesLlama2c) {
  REQUIRE_SHARED("models/stories260K.greedy.txt");
  const std::string golden = read_text(shared_file);
  const auto tokens_at = golden.find("TOKENS");
  ASSERT_NE(tokens_at, std::string::npos);
  const std::vector<std::int32_t> expected = parse_ids(golden.substr(tokens_at + 6));
  ASSERT_EQ(expected.size(), 256u);

  auto backend = make_reference_backend({});
  auto model = Model::load(shared_dir() / "models/stories260K.gguf", *backend);
  EXPECT_EQ(model->hparams().n_layer, 5);
  EXPECT_EQ(model->hparams().n_head_kv, 4);
  const std::vector<std::int32_t> got = greedy(*model, {model->tokenizer().vocab().bos}, 256);
  EXPECT_EQ(got, expected);
  // The text decodes to the golden text's start.
  const std::string text = model->tokenizer().decode(got);
  EXPECT_EQ(text.substr(0, 60), golden.substr(0, 60));
}

TEST(Stories260K, PerplexityWithinHalfAPercentOfFloat64Reference) {
  REQUIRE_SHARED("text/tinystories-valid.txt");
  auto backend = make_reference_backend({});
  auto model = Model::load(shared_dir() / "models/stories260K.gguf", *backend);
  Transformer tf(*model);
  const PerplexityResult r = score_lines(tf, nonempty_lines(read_text(shared_file), 40), 512);
  EXPECT_EQ(r.lines, 40);
  EXPECT_EQ(r.tokens, 4059);
  EXPECT_NEAR(r.mean_nll(), 1.35651, 1.35651 * 0.005);
  EXPECT_NEAR(r.perplexity(), 3.8826, 3.8826 * 0.01);
}

// The int8 KV cache on a real model, on the reference backend and this CPU's best: teacher-forced logits over the
// golden text stay close to the F16 cache's, greedy decoding still tells the golden story, and perplexity barely
// moves. Bounds: int8 with a per-(position, head) absmax scale errs by up to absmax/254 per value (~0.4% of the
// row's range, about 8x F16's rounding). Measured on stories260K: the worst of 128 rows moves by 3.0% of its
// logit spread (bound 5%), 127 of 128 top-1 tokens agree (bound 126), greedy keeps all 64 golden tokens
// (bound 48), mean NLL 1.35652 -> 1.35735 (+0.06%, bound 0.5%).
TEST(Stories260K, Int8KvCacheStaysCloseToF16) {
  REQUIRE_SHARED("models/stories260K.greedy.txt");
  const std::string golden = read_text(shared_file);
  const std::vector<std::int32_t> expected = parse_ids(golden.substr(golden.find("TOKENS") + 6));
  static PluginHost host({BITRUN_TEST_PLUGIN_DIR}, detect_cpu());
  std::vector<std::unique_ptr<Backend>> backends;
  backends.push_back(make_reference_backend({}));
  backends.push_back(host.create_backend(host.choose_backend("auto"), 2));
  for (const auto& be : backends) {
    // One model, two cache types: the type belongs to what runs the model.
    auto model = Model::load(shared_dir() / "models/stories260K.gguf", *be);
    const Model* f16 = model.get();
    ASSERT_EQ(KvCache(*model, 1, KvCacheType::Int8).type(), KvCacheType::Int8);

    // Teacher-forced: BOS + 127 golden tokens, logits of every row.
    std::vector<std::int32_t> ids{f16->tokenizer().vocab().bos};
    ids.insert(ids.end(), expected.begin(), expected.begin() + 127);
    auto all_logits = [&](const Model& model, KvCacheType kv_cache) {
      KvCache cache(model, static_cast<std::int64_t>(ids.size()), kv_cache);
      std::vector<ForwardRow> rows;
      std::vector<std::int32_t> wanted;
      for (std::int32_t i = 0; i < static_cast<std::int32_t>(ids.size()); ++i) {
        rows.push_back({ids[static_cast<std::size_t>(i)], i, i + 1, &cache});
        wanted.push_back(i);
      }
      std::vector<float> logits(ids.size() * static_cast<std::size_t>(model.hparams().n_vocab));
      Transformer(model).forward(rows, wanted, logits.data());
      return logits;
    };
    const std::vector<float> want = all_logits(*model, KvCacheType::F16), got = all_logits(*model, KvCacheType::Int8);
    const auto vocab = static_cast<std::size_t>(f16->hparams().n_vocab);
    double worst = 0.0;   // largest |int8 - f16| over a row, relative to the row's max - min
    int same_top1 = 0;
    for (std::size_t r = 0; r < ids.size(); ++r) {
      const float* w = want.data() + r * vocab;
      const float* g = got.data() + r * vocab;
      const auto [lo, hi] = std::minmax_element(w, w + vocab);
      double diff = 0.0;
      for (std::size_t i = 0; i < vocab; ++i) diff = std::max(diff, double{std::fabs(g[i] - w[i])});
      worst = std::max(worst, diff / (*hi - *lo));
      same_top1 += std::max_element(w, w + vocab) == w + (std::max_element(g, g + vocab) - g);
    }
    std::cout << be->name() << ": int8 vs f16 logits, worst row max|diff| / spread " << worst << ", top-1 agrees "
              << same_top1 << " of " << ids.size() << "\n";
    EXPECT_LT(worst, 0.05) << be->name();
    EXPECT_GE(same_top1, static_cast<int>(ids.size()) - 2) << be->name();

    // Greedy from BOS still tells the golden story.
    const std::vector<std::int32_t> greedy_ids =
        greedy(*model, {model->tokenizer().vocab().bos}, 64, KvCacheType::Int8);
    const auto first_diff = std::mismatch(greedy_ids.begin(), greedy_ids.end(), expected.begin()).first - greedy_ids.begin();
    std::cout << be->name() << ": int8 greedy follows the golden tokens for " << first_diff << " of 64\n";
    EXPECT_GE(first_diff, 48) << be->name() << ": " << model->tokenizer().decode(greedy_ids);
    EXPECT_EQ(model->tokenizer().decode(greedy_ids).rfind("Once upon a time, there was a little girl named Lily.", 0), 0u);
  }
}

TEST(Stories260K, Int8KvCachePerplexityWithinHalfAPercentOfF16) {
  REQUIRE_SHARED("text/tinystories-valid.txt");
  auto backend = make_reference_backend({});
  auto model = Model::load(shared_dir() / "models/stories260K.gguf", *backend);
  const auto lines = nonempty_lines(read_text(shared_file), 40);
  Transformer tf(*model);
  const double nll16 = score_lines(tf, lines, 512).mean_nll();
  const double nll8 = score_lines(tf, lines, 512, {}, KvCacheType::Int8).mean_nll();
  std::cout << "mean NLL f16 " << nll16 << ", int8 " << nll8 << "\n";
  EXPECT_NE(nll8, nll16);   // the int8 cache is really used
  EXPECT_NEAR(nll8, nll16, nll16 * 0.005);
}

struct Fixture {
  std::string name;
  bool dense_float;   // F16 sources: the engines ran them as float matrices, so do we
};

void PrintTo(const Fixture& f, std::ostream* os) { *os << f.name; }

class FixtureTest : public ::testing::TestWithParam<Fixture> {};

// Per-position cosine and top-1 agreement against the recorded logits, and the recorded greedy continuation,
// at the bar the fixture README sets for an independent engine (cosine >= 0.999, top-1 >= 44 of 48).
TEST_P(FixtureTest, LogitsAgreeWithTheEngineThatWroteIt) {
  const Fixture fx = GetParam();
  REQUIRE_SHARED("fixtures/" + fx.name + ".gguf");
  const std::string ids_text = read_text(shared_dir() / "fixtures" / (fx.name + ".ids.txt"));
  const auto greedy_at = ids_text.find("greedy");
  const std::vector<std::int32_t> input = parse_ids(ids_text.substr(5, greedy_at - 5));
  const std::vector<std::int32_t> expected_greedy = parse_ids(ids_text.substr(greedy_at + 6));
  ASSERT_EQ(input.size(), 48u);
  const std::string raw = read_text(shared_dir() / "fixtures" / (fx.name + ".logits.f32"));
  ASSERT_EQ(raw.size(), 48u * 1024u * 4u);
  std::vector<float> expected(48 * 1024);
  std::memcpy(expected.data(), raw.data(), raw.size());

  auto backend = make_reference_backend({});
  ModelLoadOptions options;
  options.ternarize_float_weights = !fx.dense_float;
  options.int8_output = !fx.dense_float;   // float fixtures: F16 output as the engines; else our default int8
  auto model = Model::load(shared_file, *backend, options);
  ASSERT_EQ(model->hparams().n_vocab, 1024);

  KvCache cache(*model, 64);
  Transformer tf(*model);
  std::vector<ForwardRow> rows;
  std::vector<std::int32_t> all;
  for (std::int32_t i = 0; i < 48; ++i) {
    rows.push_back({input[static_cast<std::size_t>(i)], i, i + 1, &cache});
    all.push_back(i);
  }
  std::vector<float> logits(48 * 1024);
  tf.forward(rows, all, logits.data());

  double min_cos = 1.0;
  int agree = 0;
  for (int r = 0; r < 48; ++r) {
    const std::span<const float> a(logits.data() + r * 1024, 1024), b(expected.data() + r * 1024, 1024);
    double dot = 0, na = 0, nb = 0;
    for (int v = 0; v < 1024; ++v) {
      dot += static_cast<double>(a[v]) * b[v];
      na += static_cast<double>(a[v]) * a[v];
      nb += static_cast<double>(b[v]) * b[v];
    }
    min_cos = std::min(min_cos, dot / std::sqrt(na * nb));
    agree += argmax(a) == argmax(b);
  }
  RecordProperty("min_cosine", std::to_string(min_cos));
  std::cout << fx.name << ": min cosine " << min_cos << ", top-1 agreement " << agree << "/48\n";
  EXPECT_GE(min_cos, 0.999);
  EXPECT_GE(agree, 44);
  EXPECT_EQ(greedy(*model, input, 16), expected_greedy);
}

INSTANTIATE_TEST_SUITE_P(Engines, FixtureTest,
                         ::testing::Values(Fixture{"tiny-b158-f16", true}, Fixture{"tiny-b158-i2_s", false},
                                           Fixture{"tiny-bitnet-f16", true}, Fixture{"tiny-bitnet-tq2_0", false},
                                           Fixture{"tiny-bitnet-tq1_0", false}),
                         [](const auto& info) {
                           std::string n = info.param.name;
                           for (char& c : n)
                             if (c == '-' || c == '.') c = '_';
                           return n;
                         });

// F16 source -> each ternary type with `convert`, read back: every projection holds exactly the ternary weights
// (codes and scale) that ternarizing the source gives. I2_S computes what the source computes when ternarized at
// load, bit for bit; TQ2_0 and TQ1_0 (per-256-block activation scales, as llama.cpp) agree with each other.
TEST(Convert, EveryTernaryTypeRoundTripsTheWeights) {
  REQUIRE_SHARED("fixtures/tiny-bitnet-f16.gguf");
  const GgufFile src = GgufFile::open(shared_file);
  auto backend = make_reference_backend({});
  const std::vector<std::int32_t> ids{1, 50, 300, 7, 999};
  auto logits_of = [&](const Model& model) {
    KvCache cache(model, 8);
    std::vector<ForwardRow> rows;
    std::vector<std::int32_t> all;
    for (std::int32_t i = 0; i < 5; ++i) {
      rows.push_back({ids[static_cast<std::size_t>(i)], i, i + 1, &cache});
      all.push_back(i);
    }
    std::vector<float> out(5 * 1024);
    Transformer(model).forward(rows, all, out.data());
    return out;
  };
  const std::vector<float> source_logits = logits_of(*Model::load(shared_file, *backend));

  std::map<GgmlType, std::vector<float>> logits;
  for (GgmlType type : {GgmlType::I2_S, GgmlType::TQ2_0, GgmlType::TQ1_0}) {
    const fs::path out = fs::temp_directory_path() / ("bitrun-convert-" + std::to_string(::getpid()) + ".gguf");
    ConvertOptions opt;
    opt.weight_type = type;
    convert_model(src, out, opt);
    GgufFile converted = GgufFile::open(out);
    EXPECT_EQ(converted.find_tensor("token_embd.weight")->type, GgmlType::F16);   // non-projections kept
    int projections = 0;
    for (const auto& t : src.tensors()) {
      if (!is_projection_weight(t.name)) continue;
      ++projections;
      const GgufTensorInfo* c = converted.find_tensor(t.name);
      ASSERT_EQ(c->type, type) << t.name;
      std::vector<float> values(static_cast<std::size_t>(t.n_elements()));
      dequantize(t.type, src.tensor_data(t), t.bytes, t.row_len(), t.n_rows(), values.data());
      const TernaryTensor want = ternarize(values.data(), t.row_len(), t.n_rows());
      const TernaryTensor got = decode_ternary(c->type, converted.tensor_data(*c), c->bytes, c->row_len(), c->n_rows());
      ASSERT_EQ(got.codes, want.codes) << t.name;
      for (std::int64_t i = 0; i < t.n_elements(); i += 97)
        ASSERT_EQ(got.scales[static_cast<std::size_t>(i / got.scale_block)],
                  want.scales[static_cast<std::size_t>(i / want.scale_block)]) << t.name;
    }
    EXPECT_EQ(projections, 14);
    logits[type] = logits_of(*Model::load(out, *backend));
    fs::remove(out);
  }
  EXPECT_EQ(logits[GgmlType::I2_S], source_logits);
  EXPECT_EQ(logits[GgmlType::TQ2_0], logits[GgmlType::TQ1_0]);
}

TEST(Convert, RefusesTernaryForAFloatArchitecture) {
  REQUIRE_SHARED("models/stories260K.gguf");
  ConvertOptions opt;
  opt.weight_type = GgmlType::TQ2_0;
  const std::string msg = test::error_message<Error>(
      [&] { convert_model(GgufFile::open(shared_file), fs::temp_directory_path() / "never.gguf", opt); });
  EXPECT_NE(msg.find("llama"), std::string::npos) << msg;
}

TEST(ModelLoad, ErrorsNameTheProblem) {
  REQUIRE_SHARED("fixtures/tiny-bitnet-f16.gguf");
  GgufFile src = GgufFile::open(shared_file);
  auto backend = make_reference_backend({});
  const fs::path out = fs::temp_directory_path() / ("bitrun-bad-model-" + std::to_string(::getpid()) + ".gguf");

  // Rewrites the fixture with one change and returns the load error.
  auto load_error = [&](const std::string& drop_tensor, const std::string& key, const GgufValue* value) {
    GgufWriter w;
    for (const auto& [k, v] : src.metadata()) w.set(k, v);
    if (!key.empty()) w.set(key, *value);
    for (const auto& t : src.tensors())
      if (t.name != drop_tensor)
        w.add_tensor(t.name, t.ne, t.type, std::vector<std::uint8_t>(src.tensor_data(t), src.tensor_data(t) + t.bytes));
    w.write(out);
    return test::error_message<Error>([&] { Model::load(out, *backend); });
  };
  EXPECT_NE(load_error("blk.1.ffn_up.weight", "", nullptr).find("missing tensor 'blk.1.ffn_up.weight'"),
            std::string::npos);
  const GgufValue arch = GgufValue::string("mamba");
  EXPECT_NE(load_error("", "general.architecture", &arch).find("unsupported architecture 'mamba'"), std::string::npos);
  const GgufValue heads = GgufValue::u32(3);
  EXPECT_NE(load_error("", "bitnet.attention.head_count", &heads).find("head_count"), std::string::npos);
  const GgufValue huge_count = GgufValue::u32(1u << 30);
  EXPECT_NE(load_error("", "bitnet.block_count", &huge_count).find("missing tensor 'blk.1073741823.attn_norm.weight'"),
            std::string::npos);
  const GgufValue bad_type = GgufValue::string("x");
  EXPECT_NE(load_error("", "bitnet.block_count", &bad_type).find("'bitnet.block_count' is a string"),
            std::string::npos);
  fs::remove(out);
}

// diffusion.* and the mask token: read into Model::diffusion() / mask_token(); a bad value names its key.
TEST(ModelLoad, DiffusionMetadataIsReadAndBadValuesNameTheKey) {
  REQUIRE_SHARED("fixtures/tiny-bitnet-f16.gguf");
  GgufFile src = GgufFile::open(shared_file);
  auto backend = make_reference_backend({});
  const fs::path out = fs::temp_directory_path() / ("bitrun-dlm-model-" + std::to_string(::getpid()) + ".gguf");
  // The fixture with extra metadata.
  auto write = [&](const std::vector<std::pair<std::string, GgufValue>>& extra) {
    GgufWriter w;
    for (const auto& [k, v] : src.metadata()) w.set(k, v);
    for (const auto& [k, v] : extra) w.set(k, v);
    for (const auto& t : src.tensors())
      w.add_tensor(t.name, t.ne, t.type, std::vector<std::uint8_t>(src.tensor_data(t), src.tensor_data(t) + t.bytes));
    w.write(out);
  };
  auto load_error = [&](const std::string& key, GgufValue value) {
    write({{key, std::move(value)}});
    return test::error_message<FormatError>([&] { Model::load(out, *backend); });
  };

  write({});
  auto plain = Model::load(out, *backend);
  EXPECT_FALSE(plain->mask_token());
  EXPECT_EQ(plain->diffusion().block_size, 0);
  EXPECT_EQ(plain->diffusion().attention, DiffusionAttention::Unspecified);
  EXPECT_TRUE(plain->diffusion().shift_logits);

  write({{"tokenizer.ggml.mask_token_id", GgufValue::u32(5)}, {"diffusion.block_size", GgufValue::u32(16)},
         {"diffusion.attention", GgufValue::string("causal")}, {"diffusion.shift_logits", GgufValue::boolean(false)}});
  auto dlm = Model::load(out, *backend);
  EXPECT_EQ(dlm->mask_token(), 5);
  EXPECT_EQ(dlm->diffusion().block_size, 16);
  EXPECT_EQ(dlm->diffusion().attention, DiffusionAttention::Causal);
  EXPECT_FALSE(dlm->diffusion().shift_logits);
  const ModelFacts facts = model_facts(*dlm);
  EXPECT_EQ(facts.mask_token, 5);
  EXPECT_EQ(facts.vocab_size, dlm->hparams().n_vocab);
  EXPECT_EQ(facts.diffusion.block_size, 16);

  // llama.cpp's <arch>.attention.causal when diffusion.attention is absent.
  write({{"bitnet.attention.causal", GgufValue::boolean(false)}});
  EXPECT_EQ(Model::load(out, *backend)->diffusion().attention, DiffusionAttention::BlockCausal);
  write({{"bitnet.attention.causal", GgufValue::boolean(true)}});
  EXPECT_EQ(Model::load(out, *backend)->diffusion().attention, DiffusionAttention::Causal);

  EXPECT_NE(load_error("diffusion.block_size", GgufValue::u32(0)).find("diffusion.block_size is 0"), std::string::npos);
  EXPECT_NE(load_error("diffusion.block_size", GgufValue::u32(100000)).find("diffusion.block_size is 100000"),
            std::string::npos);
  EXPECT_NE(load_error("diffusion.attention", GgufValue::string("sideways")).find("diffusion.attention is 'sideways'"),
            std::string::npos);
  EXPECT_NE(load_error("diffusion.shift_logits", GgufValue::string("yes")).find("diffusion.shift_logits"),
            std::string::npos);
  EXPECT_NE(load_error("diffusion.attention", GgufValue::u32(1)).find("diffusion.attention"), std::string::npos);
  EXPECT_NE(load_error("tokenizer.ggml.mask_token_id", GgufValue::u32(1u << 20)).find("mask_token_id is out of range"),
            std::string::npos);
  fs::remove(out);
}

TEST(Synthetic, TinyPresetCarriesAMaskTokenAndTheBlockCausalContract) {
  const fs::path path = fs::temp_directory_path() / ("bitrun-synth-dlm-" + std::to_string(::getpid()) + ".gguf");
  SyntheticSpec spec = synthetic_preset("bitnet-tiny");
  write_synthetic_model(spec, path, 7);
  auto backend = make_reference_backend({});
  auto model = Model::load(path, *backend);
  EXPECT_EQ(model->mask_token(), 1023);
  EXPECT_EQ(model->diffusion().block_size, 32);
  EXPECT_EQ(model->diffusion().attention, DiffusionAttention::BlockCausal);
  Config config = test::plugin_config();
  config.set("sampling.temperature", "0", ConfigSource::CommandLine, "test");
  const DecodeRequest r = make_decode_request(config, *model, {1, 5}, 9);
  EXPECT_EQ(r.model.mask_token, 1023);
  EXPECT_EQ(r.model.vocab_size, 1024);
  EXPECT_EQ(r.max_tokens, 9);
  EXPECT_EQ(r.context_size, 512);
  EXPECT_EQ(r.sampling.temperature, 0.0f);
  // Without the metadata key the mask token is still found: `|<MASK>|` encodes to that one token.
  spec.diffusion_metadata = false;
  write_synthetic_model(spec, path, 7);
  model = Model::load(path, *backend);
  EXPECT_FALSE(model->mask_token());
  EXPECT_EQ(model->diffusion().attention, DiffusionAttention::Unspecified);
  EXPECT_EQ(model_facts(*model).mask_token, 1023);
  fs::remove(path);
}

// Only the logit rows run the last layer past their K/V: the logits of any choice of rows (out of order, repeated)
// equal a forward's that asks for every row, every row's K/V reach the cache either way (also with no logits at
// all), and the last layer's attention sees only the chosen rows.
TEST(Transformer, OnlyLogitRowsRunTheLastLayerPastTheirKv) {
  struct CountingBackend : Backend {
    using Backend::Backend;
    mutable std::int64_t attention_rows = 0;
    void attention(const float* q, std::int64_t rows, const KvLayerView& kv, const std::int32_t* limit,
                   std::int64_t n_heads, std::int64_t n_kv_heads, std::int64_t head_dim, float* out) const override {
      attention_rows += rows;
      Backend::attention(q, rows, kv, limit, n_heads, n_kv_heads, head_dim, out);
    }
  };
  const fs::path path = fs::temp_directory_path() / ("bitrun-last-layer-" + std::to_string(::getpid()) + ".gguf");
  write_synthetic_model(synthetic_preset("bitnet-tiny"), path, 7);
  CountingBackend backend("counting", {});
  auto model = Model::load(path, backend);
  fs::remove(path);
  const ModelHparams& hp = model->hparams();
  ASSERT_GE(hp.n_layer, 2);
  // 5 causal rows, then a bidirectional block of 6 (what a diffusion step sends).
  const std::int64_t n = 11;
  auto run = [&](KvCache& cache, const std::vector<std::int32_t>& logit_rows) {
    std::vector<ForwardRow> rows;
    for (std::int32_t p = 0; p < n; ++p) rows.push_back({(p * 37 + 3) % 1000, p, p < 5 ? p + 1 : 11, &cache});
    std::vector<float> logits(logit_rows.size() * static_cast<std::size_t>(hp.n_vocab));
    backend.attention_rows = 0;
    Transformer(*model).forward(rows, logit_rows, logits.data());
    return logits;
  };
  auto cached = [&](const KvCache& cache) {   // every layer's K and V rows of the n positions, as stored
    std::vector<std::uint16_t> all;
    const std::int64_t row = hp.n_head_kv * hp.head_dim;
    for (std::int64_t l = 0; l < hp.n_layer; ++l) {
      const KvLayerView view = cache.layer(l);
      for (const void* base : {view.k, view.v})
        for (std::int64_t p = 0; p < n; ++p) {
          const auto* values = static_cast<const std::uint16_t*>(base) + p * view.row_stride;
          all.insert(all.end(), values, values + row);
        }
    }
    return all;
  };
  std::vector<std::int32_t> every(n);
  for (std::int32_t r = 0; r < n; ++r) every[r] = r;
  KvCache full_cache(*model, 16);
  const std::vector<float> all_logits = run(full_cache, every);
  EXPECT_EQ(backend.attention_rows, hp.n_layer * n);

  const std::vector<std::int32_t> chosen = {9, 2, 9, 10};
  KvCache chosen_cache(*model, 16);
  const std::vector<float> chosen_logits = run(chosen_cache, chosen);
  EXPECT_EQ(backend.attention_rows, (hp.n_layer - 1) * n + 4);
  for (std::size_t i = 0; i < chosen.size(); ++i)
    for (std::int64_t v = 0; v < hp.n_vocab; ++v)
      ASSERT_EQ(chosen_logits[i * hp.n_vocab + v], all_logits[chosen[i] * hp.n_vocab + v]) << "row " << chosen[i];
  EXPECT_EQ(cached(chosen_cache), cached(full_cache));
  EXPECT_EQ(chosen_cache.size(), full_cache.size());

  KvCache no_logits_cache(*model, 16);
  run(no_logits_cache, {});
  EXPECT_EQ(backend.attention_rows, (hp.n_layer - 1) * n);
  EXPECT_EQ(cached(no_logits_cache), cached(full_cache));
  EXPECT_EQ(no_logits_cache.size(), full_cache.size());

  // A logit row outside the batch is refused before any row runs.
  KvCache untouched(*model, 16);
  backend.attention_rows = 0;
  EXPECT_THROW(run(untouched, {static_cast<std::int32_t>(n)}), Error);
  EXPECT_EQ(backend.attention_rows, 0);
  EXPECT_EQ(untouched.size(), 0);
}

TEST(Stories260K, HasNoMaskToken) {
  REQUIRE_SHARED("models/stories260K.gguf");
  auto backend = make_reference_backend({});
  EXPECT_EQ(model_facts(*Model::load(shared_file, *backend)).mask_token, -1);   // `|<MASK>|` is several tokens
}

TEST(Synthetic, TinyPresetLoadsRunsAndIsReproducible) {
  const fs::path a = fs::temp_directory_path() / ("bitrun-synth-a-" + std::to_string(::getpid()) + ".gguf");
  const fs::path b = fs::temp_directory_path() / ("bitrun-synth-b-" + std::to_string(::getpid()) + ".gguf");
  SyntheticSpec spec = synthetic_preset("bitnet-tiny");
  write_synthetic_model(spec, a, 7);
  write_synthetic_model(spec, b, 7);
  EXPECT_EQ(read_text(a), read_text(b));
  auto backend = make_reference_backend({});
  auto model = Model::load(a, *backend);
  EXPECT_EQ(model->hparams().n_embd, 256);
  EXPECT_EQ(model->hparams().n_vocab, 1024);
  EXPECT_EQ(model->architecture().name, "bitnet-b1.58");
  EXPECT_EQ(GgufFile::open(a).find_tensor("blk.1.ffn_down.weight")->type, GgmlType::I2_S);
  const std::vector<std::int32_t> out = greedy(*model, model->tokenizer().encode("hello", true, false), 4);
  for (std::int32_t id : out) EXPECT_TRUE(id >= 0 && id < 1024);
  spec.weight_type = GgmlType::TQ1_0;
  spec.embedding_type = GgmlType::Q8_0;
  write_synthetic_model(spec, b, 7);
  EXPECT_EQ(GgufFile::open(b).find_tensor("token_embd.weight")->type, GgmlType::Q8_0);
  EXPECT_NO_THROW(Model::load(b, *backend));
  EXPECT_THROW(synthetic_preset("bitnet-99b"), Error);
  fs::remove(a);
  fs::remove(b);
}


// A model file truncated while the model is loaded (a deploy writing over it) makes the next token's embedding an
// error naming the file, not a SIGBUS.
TEST(ModelLoad, AModelFileTruncatedInUseIsAnErrorNotACrash) {
  const fs::path path = fs::temp_directory_path() / ("bitrun-truncated-" + std::to_string(::getpid()) + ".gguf");
  fs::copy_file(fs::path(BITRUN_SOURCE_DIR) / "models" / "default.gguf", path, fs::copy_options::overwrite_existing);
  auto backend = make_reference_backend({});
  auto model = Model::load(path, *backend);
  std::vector<float> row(static_cast<std::size_t>(model->hparams().n_embd));
  model->embed(5, row.data());
  fs::resize_file(path, 0);
  const std::string message = test::error_message<Error>([&] { model->embed(400, row.data()); });
  EXPECT_NE(message.find("changed on disk"), std::string::npos) << message;
  EXPECT_NE(message.find(path.string()), std::string::npos) << message;
  // Through a forward pass too, and again: the process keeps running.
  KvCache cache(*model, 4);
  Transformer tf(*model);
  const ForwardRow r{7, 0, 1, &cache};
  const std::int32_t zero = 0;
  std::vector<float> logits(static_cast<std::size_t>(model->hparams().n_vocab));
  EXPECT_THROW(tf.forward(std::span<const ForwardRow>(&r, 1), std::span<const std::int32_t>(&zero, 1), logits.data()),
               Error);
  fs::remove(path);
}

// A ternary model whose tied embedding is Q6_K keeps it as Q6_K for the output projection (fewer bytes than int8),
// and its logits are the float product's up to the int8 activations' rounding.
TEST(ModelLoad, Q6kOutputProjectionIsReadAsStored) {
  const fs::path path = fs::temp_directory_path() / ("bitrun-synth-q6k-" + std::to_string(::getpid()) + ".gguf");
  SyntheticSpec spec = synthetic_preset("bitnet-tiny");
  spec.embedding_type = GgmlType::Q6_K;
  write_synthetic_model(spec, path, 3);
  auto backend = make_reference_backend({});
  auto model = Model::load(path, *backend);
  ASSERT_TRUE(model->output().q6_k);
  EXPECT_FALSE(model->output().int8);
  ModelLoadOptions float_output;
  float_output.int8_output = false;
  auto dense = Model::load(path, *backend, float_output);
  ASSERT_FALSE(dense->output().dense.empty());
  auto last_logits = [](const Model& m) {
    KvCache cache(m, 8);
    Transformer tf(m);
    std::vector<ForwardRow> rows;
    for (std::int32_t i = 0; i < 5; ++i) rows.push_back({3 + 7 * i, i, i + 1, &cache});
    std::vector<float> logits(static_cast<std::size_t>(m.hparams().n_vocab));
    const std::int32_t last = 4;
    tf.forward(rows, std::span<const std::int32_t>(&last, 1), logits.data());
    return logits;
  };
  const std::vector<float> got = last_logits(*model), want = last_logits(*dense);
  float largest = 0.0f, worst = 0.0f;
  for (std::size_t i = 0; i < got.size(); ++i) {
    largest = std::max(largest, std::fabs(want[i]));
    worst = std::max(worst, std::fabs(got[i] - want[i]));
  }
  EXPECT_GT(largest, 0.0f);
  EXPECT_LT(worst, 0.02f * largest) << "largest logit " << largest;
  fs::remove(path);
}

// Optional LRC tensors (y += U (V^T x)) and per-tensor `.scale`: a float model with them computes what the same
// model computes with the folded weight W' = s * W + U V^T.
TEST(ModelLoad, LowRankCorrectionAndScaleFoldIntoTheWeight) {
  REQUIRE_SHARED("models/stories260K.gguf");
  const GgufFile src = GgufFile::open(shared_file);
  const GgufTensorInfo& wq = *src.find_tensor("blk.0.attn_q.weight");
  const std::int64_t in = wq.row_len(), out = wq.n_rows(), rank = 3;
  std::vector<float> w(static_cast<std::size_t>(in * out)), u(static_cast<std::size_t>(out * rank)),
      v(static_cast<std::size_t>(in * rank));
  dequantize(wq.type, src.tensor_data(wq), wq.bytes, in, out, w.data());
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 0.05f);
  for (auto& x : u) x = dist(rng);
  for (auto& x : v) x = dist(rng);
  const float scale = 1.5f;
  std::vector<float> folded(w.size());
  for (std::int64_t o = 0; o < out; ++o)
    for (std::int64_t i = 0; i < in; ++i) {
      float acc = 0.0f;
      for (std::int64_t r = 0; r < rank; ++r) acc += u[static_cast<std::size_t>(o * rank + r)] * v[static_cast<std::size_t>(i * rank + r)];
      folded[static_cast<std::size_t>(o * in + i)] = scale * w[static_cast<std::size_t>(o * in + i)] + acc;
    }
  auto write = [&](const fs::path& path, bool with_lrc) {
    GgufWriter wr;
    for (const auto& [k, val] : src.metadata()) wr.set(k, val);
    for (const auto& t : src.tensors()) {
      if (t.name == wq.name) {
        wr.add_f32_tensor(t.name, t.ne, with_lrc ? w : folded);
        continue;
      }
      wr.add_tensor(t.name, t.ne, t.type, std::vector<std::uint8_t>(src.tensor_data(t), src.tensor_data(t) + t.bytes));
    }
    if (with_lrc) {
      wr.add_f32_tensor("blk.0.attn_q.lrc_U", {rank, out}, u);
      wr.add_f32_tensor("blk.0.attn_q.lrc_V", {rank, in}, v);
      wr.add_f32_tensor("blk.0.attn_q.scale", {1}, {scale});
    }
    wr.write(path);
  };
  const fs::path a = fs::temp_directory_path() / ("bitrun-lrc-" + std::to_string(::getpid()) + ".gguf");
  const fs::path b = fs::temp_directory_path() / ("bitrun-folded-" + std::to_string(::getpid()) + ".gguf");
  write(a, true);
  write(b, false);
  auto backend = make_reference_backend({});
  auto with_lrc = Model::load(a, *backend), with_folded = Model::load(b, *backend);
  const std::vector<std::int32_t> ids{1, 403, 407, 261, 378};
  auto logits = [&](const Model& m) {
    KvCache cache(m, 8);
    std::vector<ForwardRow> rows;
    for (std::int32_t i = 0; i < 5; ++i) rows.push_back({ids[static_cast<std::size_t>(i)], i, i + 1, &cache});
    const std::int32_t last = 4;
    std::vector<float> l(512);
    Transformer(m).forward(rows, std::span<const std::int32_t>(&last, 1), l.data());
    return l;
  };
  const std::vector<float> x = logits(*with_lrc), y = logits(*with_folded);
  double max_diff = 0.0, max_abs = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    max_diff = std::max(max_diff, static_cast<double>(std::fabs(x[i] - y[i])));
    max_abs = std::max(max_abs, static_cast<double>(std::fabs(y[i])));
  }
  EXPECT_LT(max_diff, 1e-4 * (1.0 + max_abs));
  // And the correction is not a no-op: the unfolded original differs.
  auto plain = Model::load(shared_file, *backend);
  const std::vector<float> z = logits(*plain);
  double plain_diff = 0.0;
  for (std::size_t i = 0; i < z.size(); ++i) plain_diff = std::max(plain_diff, static_cast<double>(std::fabs(z[i] - y[i])));
  EXPECT_GT(plain_diff, 1e-3);
  fs::remove(a);
  fs::remove(b);
}


// Rewrites a fixture with one tensor's bytes changed by `edit`.
fs::path edited_fixture(const fs::path& src_path, const std::string& tensor,
                        const std::function<void(std::vector<std::uint8_t>&)>& edit) {
  const GgufFile src = GgufFile::open(src_path);
  GgufWriter w;
  for (const auto& [k, v] : src.metadata()) w.set(k, v);
  for (const auto& t : src.tensors()) {
    std::vector<std::uint8_t> bytes(src.tensor_data(t), src.tensor_data(t) + t.bytes);
    if (t.name == tensor) edit(bytes);
    w.add_tensor(t.name, t.ne, t.type, std::move(bytes));
  }
  const fs::path out =
      fs::temp_directory_path() / ("bitrun-edited-" + tensor + "-" + std::to_string(::getpid()) + ".gguf");
  w.write(out);
  return out;
}

// Backends pack weights on several threads; a corrupt tensor met there must still be a FormatError naming it.
TEST(ModelLoad, CorruptWeightsAreAnErrorOnEveryBackend) {
  REQUIRE_SHARED("fixtures/tiny-b158-i2_s.gguf");
  const fs::path bad_code = edited_fixture(shared_file, "blk.1.ffn_up.weight", [](auto& b) { b[1000] = 0xFF; });
  const fs::path bad_embd = edited_fixture(shared_file, "token_embd.weight", [](auto& b) {
    b[2 * 5000] = 0x00;
    b[2 * 5000 + 1] = 0x7E;   // an F16 NaN in the tied embedding, which becomes the int8 output projection
  });
  static PluginHost host({BITRUN_TEST_PLUGIN_DIR}, detect_cpu());
  std::vector<std::unique_ptr<Backend>> backends;
  backends.push_back(make_reference_backend({}));
  for (const char* name : {"avx2", "avx512"}) {
    const PluginRecord* r = host.find(PluginKind::Backend, name);
    if (r && r->score > 0) backends.push_back(host.create_backend(host.choose_backend(name), 2));
  }
  for (const auto& be : backends) {
    const std::string code_error = test::error_message<FormatError>([&] { Model::load(bad_code, *be); });
    EXPECT_NE(code_error.find("invalid code 3"), std::string::npos) << be->name() << ": " << code_error;
    EXPECT_NE(test::error_message<FormatError>([&] { Model::load(bad_embd, *be); }).find("inf or NaN"),
              std::string::npos) << be->name();
  }
  fs::remove(bad_code);
  fs::remove(bad_embd);
}

}  // namespace
}  // namespace bitrun
