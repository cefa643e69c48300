// `bitrun import`: the safetensors reader's checks, the BitNet release's 2-bit packing, tokenizer.json against the
// shared vocab test vectors, and whole folders: the default model's export (tools/train-default-model writes it to
// tests/data/default-model-hf) imports to the same weights and logits as models/default.gguf, and stories260K
// written as a LlamaForCausalLM folder imports to its own logits.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "bitrun/plugin/backend.hpp"
#include "bitrun/base/error.hpp"
#include "bitrun/gguf/gguf.hpp"
#include "bitrun/import/hf_import.hpp"
#include "bitrun/import/hf_tokenizer.hpp"
#include "bitrun/base/json.hpp"
#include "bitrun/model/kv_cache.hpp"
#include "bitrun/model/model.hpp"
#include "bitrun/import/safetensors.hpp"
#include "bitrun/tokenizer/tokenizer.hpp"
#include "bitrun/model/transformer.hpp"
#include "test_support.hpp"

namespace bitrun {
namespace {

namespace fs = std::filesystem;
using test::error_message;
using test::shared_path;

const fs::path kDefaultExport = fs::path(BITRUN_SOURCE_DIR) / "tests" / "data" / "default-model-hf";

// A fresh directory under the test's temp dir.
fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("bitrun-test-import-" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Entry {
  std::string name, dtype;
  std::vector<std::int64_t> shape;
  std::vector<std::uint8_t> bytes;
  std::optional<std::pair<std::uint64_t, std::uint64_t>> offsets;   // override the computed range
};

// A safetensors file of `entries` in order; `header_extra` is spliced into the header object.
void write_safetensors(const fs::path& path, const std::vector<Entry>& entries, std::uint64_t header_len_delta = 0) {
  Json header = Json::object();
  std::uint64_t at = 0;
  std::string data;
  for (const Entry& e : entries) {
    Json d = Json::object();
    d["dtype"] = e.dtype;
    Json shape = Json::array();
    for (auto s : e.shape) shape.push_back(Json(s));
    d["shape"] = shape;
    Json off = Json::array();
    const auto range = e.offsets.value_or(std::make_pair(at, at + e.bytes.size()));
    off.push_back(Json(static_cast<std::int64_t>(range.first)));
    off.push_back(Json(static_cast<std::int64_t>(range.second)));
    d["data_offsets"] = off;
    header[e.name] = d;
    data.append(e.bytes.begin(), e.bytes.end());
    at += e.bytes.size();
  }
  const std::string text = header.dump();
  std::string out(8, '\0');
  const std::uint64_t len = text.size() + header_len_delta;
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(len >> (8 * i));
  write_text(path, out + text + data);
}

std::vector<std::uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<std::uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

TEST(Safetensors, ReadsTensorsAndRefusesBrokenHeaders) {
  const fs::path dir = temp_dir("st");
  const fs::path good = dir / "good.safetensors";
  write_safetensors(good, {{"a", "F32", {2, 3}, f32_bytes({1, 2, 3, 4, 5, 6}), {}}, {"b", "U8", {4}, {1, 2, 3, 4}, {}}});
  auto f = SafetensorsFile::open(good);
  ASSERT_EQ(f->tensors().size(), 2u);
  const SafetensorsTensor& a = f->tensors()[0];
  EXPECT_EQ(a.name, "a");
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(a.to_floats(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_NE(error_message<FormatError>([&] { f->tensors()[1].to_floats(); }).find("'b' has dtype U8"), std::string::npos);

  auto expect_error = [&](const std::string& name, const std::vector<Entry>& entries, const std::string& what,
                          std::uint64_t delta = 0) {
    const fs::path p = dir / (name + ".safetensors");
    write_safetensors(p, entries, delta);
    const std::string msg = error_message<FormatError>([&] { SafetensorsFile::open(p); });
    EXPECT_NE(msg.find(what), std::string::npos) << name << ": " << msg;
    EXPECT_NE(msg.find(p.string()), std::string::npos) << name << ": the message names the file";
  };
  const std::vector<std::uint8_t> four(4, 0);
  expect_error("header-past-end", {{"a", "F32", {1}, four, {}}}, "runs past the end of the file", 1000);
  expect_error("dtype", {{"a", "F8_E4M3", {4}, four, {}}}, "unsupported dtype 'F8_E4M3'");
  expect_error("size", {{"a", "F32", {2}, four, {}}}, "holds 4 bytes; its dtype and shape need 8");
  expect_error("past-data", {{"a", "F32", {1}, four, std::make_pair(4ull, 8ull)}}, "truncated file?");
  expect_error("overlap", {{"a", "F32", {1}, four, {}}, {"b", "F32", {1}, four, std::make_pair(2ull, 6ull)}},
               "overlap");
  expect_error("negative", {{"a", "F32", {-1}, four, {}}}, "invalid dimension");
  const fs::path tiny = dir / "tiny.safetensors";
  write_text(tiny, "abc");
  EXPECT_NE(error_message<FormatError>([&] { SafetensorsFile::open(tiny); }).find("too small"), std::string::npos);
  const fs::path not_json = dir / "notjson.safetensors";
  write_text(not_json, std::string("\x04\0\0\0\0\0\0\0{\"a\"", 12));
  EXPECT_NE(error_message<FormatError>([&] { SafetensorsFile::open(not_json); }).find("not valid JSON"), std::string::npos);
}

TEST(Safetensors, ShardedCheckpointFollowsItsIndex) {
  const fs::path dir = temp_dir("shards");
  write_safetensors(dir / "model-00001-of-00002.safetensors", {{"x", "F32", {1}, f32_bytes({1}), {}}});
  write_safetensors(dir / "model-00002-of-00002.safetensors", {{"y", "F32", {1}, f32_bytes({2}), {}}});
  write_text(dir / "model.safetensors.index.json",
             R"({"metadata": {}, "weight_map": {"x": "model-00001-of-00002.safetensors", "y": "model-00002-of-00002.safetensors"}})");
  const SafetensorsCheckpoint c = SafetensorsCheckpoint::open(dir);
  ASSERT_NE(c.find("y"), nullptr);
  EXPECT_EQ(c.find("y")->to_floats()[0], 2.0f);
  EXPECT_EQ(c.tensors().size(), 2u);

  write_text(dir / "model.safetensors.index.json",
             R"({"weight_map": {"x": "model-00002-of-00002.safetensors", "y": "model-00002-of-00002.safetensors"}})");
  EXPECT_NE(error_message<FormatError>([&] { SafetensorsCheckpoint::open(dir); }).find("tensor 'x' is not in"),
            std::string::npos);
  write_text(dir / "model.safetensors.index.json", R"({"weight_map": {"x": "model-00001-of-00002.safetensors"}})");
  write_safetensors(dir / "model-00001-of-00002.safetensors",
                    {{"x", "F32", {1}, f32_bytes({1}), {}}, {"z", "F32", {1}, f32_bytes({3}), {}}});
  EXPECT_NE(error_message<FormatError>([&] { SafetensorsCheckpoint::open(dir); }).find("'z' is not listed"),
            std::string::npos);
  write_text(dir / "model.safetensors.index.json", R"({"weight_map": {"x": "../model.safetensors"}})");
  EXPECT_NE(error_message<FormatError>([&] { SafetensorsCheckpoint::open(dir); }).find("invalid file name"),
            std::string::npos);
}

// transformers' integrations/bitnet.py documents unpack_weights with this example: packed 2 x 2 bytes holding an
// 8 x 2 ternary matrix, code 2i..2i+1 of byte (r, c) being row i * 2 + r.
TEST(BitnetPacking, FollowsTransformersOrder) {
  const std::uint8_t packed[] = {0b10100001, 0b00011000, 0b10010000, 0b00001010};
  const std::vector<std::int8_t> want = {0, -1, -1, 1, -1, 1, -1, 1, 1, 0, 0, -1, 1, -1, 1, -1};
  EXPECT_EQ(unpack_bitnet_u8(packed, 2, 2), want);
  const std::uint8_t bad[] = {0b00000011};
  EXPECT_NE(error_message<FormatError>([&] { unpack_bitnet_u8(bad, 1, 1); }).find("code 3"), std::string::npos);
}

// tokenizer.json for a GGUF vocabulary, written the way Hugging Face writes Llama 3 (byte-level BPE) and Llama 2
// (SentencePiece BPE with byte fallback: merges of every split of a piece, best-scoring piece first).
Json tokenizer_json(const Vocab& v) {
  Json tok = Json::object();
  Json model = Json::object();
  model["type"] = "BPE";
  Json vocab = Json::object();
  Json added = Json::array();
  for (std::size_t i = 0; i < v.tokens.size(); ++i) {
    const TokenType t = v.types.empty() ? TokenType::Normal : v.types[i];
    if (t == TokenType::Control || t == TokenType::UserDefined) {
      Json a = Json::object();
      a["id"] = Json(static_cast<std::int64_t>(i));
      a["content"] = v.tokens[i];
      a["special"] = t == TokenType::Control;
      added.push_back(a);
      if (v.model == Vocab::Model::Bpe) continue;   // Llama 3 lists them only as added tokens
    }
    vocab.as_object().emplace_back(v.tokens[i], Json(static_cast<std::int64_t>(i)));   // (operator[] searches)
  }
  Json merges = Json::array();
  if (v.model == Vocab::Model::Bpe) {
    for (const auto& m : v.merges) merges.push_back(m);
    model["ignore_merges"] = true;
    model["byte_fallback"] = false;
    Json split = Json::object(), pattern = Json::object(), level = Json::object(), seq = Json::object();
    split["type"] = "Split";
    pattern["Regex"] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    split["pattern"] = pattern;
    level["type"] = "ByteLevel";
    level["use_regex"] = false;
    seq["type"] = "Sequence";
    Json list = Json::array();
    list.push_back(split);
    list.push_back(level);
    seq["pretokenizers"] = list;
    tok["pre_tokenizer"] = seq;
  } else {
    std::map<std::string, std::int64_t> ids;
    for (std::size_t i = 0; i < v.tokens.size(); ++i) ids[v.tokens[i]] = static_cast<std::int64_t>(i);
    struct M { float score; std::int64_t piece, l, r; std::string a, b; };
    std::vector<M> all;
    for (std::size_t i = 0; i < v.tokens.size(); ++i) {
      if (!v.types.empty() && v.types[i] != TokenType::Normal) continue;
      const std::string& p = v.tokens[i];
      for (std::size_t k = 1; k < p.size(); ++k) {
        if ((static_cast<unsigned char>(p[k]) & 0xC0) == 0x80) continue;   // split between characters only
        auto l = ids.find(p.substr(0, k)), r = ids.find(p.substr(k));
        if (l != ids.end() && r != ids.end()) all.push_back({v.scores[i], static_cast<std::int64_t>(i), l->second, r->second, l->first, r->first});
      }
    }
    std::sort(all.begin(), all.end(), [](const M& x, const M& y) {
      return x.score != y.score ? x.score > y.score : std::tie(x.piece, x.l, x.r) < std::tie(y.piece, y.l, y.r);
    });
    for (const M& m : all) merges.push_back(m.a + " " + m.b);
    model["byte_fallback"] = true;
    model["unk_token"] = v.tokens[static_cast<std::size_t>(v.unk)];
    Json norm = Json::object(), prepend = Json::object(), list = Json::array();
    prepend["type"] = "Prepend";
    prepend["prepend"] = "\xe2\x96\x81";
    list.push_back(prepend);
    norm["type"] = "Sequence";
    norm["normalizers"] = list;
    tok["normalizer"] = norm;
  }
  model["vocab"] = vocab;
  model["merges"] = merges;
  tok["model"] = model;
  tok["added_tokens"] = added;
  return tok;
}

std::unique_ptr<Tokenizer> through_tokenizer_json(const Vocab& v, const fs::path& dir) {
  const Json tok = Json::parse(tokenizer_json(v).dump());
  GgufWriter w;
  w.set("general.architecture", GgufValue::string("llama"));
  Json model_config = Json::object();
  model_config["bos_token_id"] = Json(static_cast<std::int64_t>(v.bos));
  model_config["eos_token_id"] = Json(static_cast<std::int64_t>(v.eos));
  add_hf_tokenizer(w, tok, Json(), model_config, static_cast<std::int64_t>(v.tokens.size()), "tokenizer.json");
  w.write(dir / "vocab.gguf");
  return Tokenizer::create(vocab_from_gguf(GgufFile::open(dir / "vocab.gguf")));
}

// llama.cpp's vector files (see test_tokenizer.cpp): texts separated by "\n__ggml_vocab_test__\n", ids per line.
void expect_vectors(const Tokenizer& tok, const fs::path& inp_path) {
  const std::string inp = read_text(inp_path), sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (std::size_t pos = 0, next; (next = inp.find(sep, pos)) != std::string::npos; pos = next + sep.size())
    texts.push_back(inp.substr(pos, next - pos));
  std::istringstream out(read_text(fs::path(inp_path).replace_extension(".out")));
  std::string line;
  std::size_t i = 0;
  for (; i < texts.size() && std::getline(out, line); ++i) {
    std::vector<std::int32_t> want;
    std::istringstream ids(line);
    for (std::int32_t id; ids >> id;) want.push_back(id);
    EXPECT_EQ(tok.encode(texts[i], false, false), want) << inp_path.filename() << " case " << i;
  }
  EXPECT_EQ(i, texts.size());
  EXPECT_GT(i, 10u);
}

TEST(HfTokenizer, SharedVocabsRoundTripThroughTokenizerJson) {
  for (const char* name : {"ggml-vocab-llama-spm.gguf", "ggml-vocab-llama-bpe.gguf"}) {
    const fs::path path = shared_path(std::string("tokenizers/") + name);
    if (!fs::exists(path)) GTEST_SKIP() << "shared file " << path << " is absent (set BITRUN_SHARED_DIR or provide ../shared)";
    const Vocab original = vocab_from_gguf(GgufFile::open(path));
    const auto tok = through_tokenizer_json(original, temp_dir(name));
    const Vocab& v = tok->vocab();
    EXPECT_EQ(v.tokens, original.tokens) << name;
    EXPECT_EQ(v.model, original.model) << name;
    EXPECT_EQ(v.pre, v.model == Vocab::Model::Bpe ? "llama-bpe" : "") << name;
    EXPECT_EQ(v.merges, original.merges) << name;
    EXPECT_EQ(v.bos, original.bos);
    EXPECT_EQ(v.eos, original.eos);
    for (std::size_t i = 0; i < v.tokens.size(); ++i)
      ASSERT_EQ(v.types[i], original.types.empty() ? TokenType::Normal : original.types[i]) << name << " token " << i;
    expect_vectors(*tok, fs::path(path.string() + ".inp"));
  }
}

TEST(HfTokenizer, RefusesWhatItCannotRepresent) {
  Json tok = Json::parse(R"({"model": {"type": "WordPiece", "vocab": {"a": 0}}})");
  GgufWriter w;
  EXPECT_NE(error_message<FormatError>([&] { add_hf_tokenizer(w, tok, Json(), Json(), 0, "t.json"); })
                .find("model.type 'WordPiece' is not supported"),
            std::string::npos);
  tok = Json::parse(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 2}, "merges": [], "byte_fallback": true}})");
  EXPECT_NE(error_message<FormatError>([&] { add_hf_tokenizer(w, tok, Json(), Json(), 0, "t.json"); })
                .find("token id 1 is missing"),
            std::string::npos);
  tok = Json::parse(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
                        "pre_tokenizer": {"type": "ByteLevel", "use_regex": false}})");
  EXPECT_NE(error_message<FormatError>([&] { add_hf_tokenizer(w, tok, Json(), Json(), 0, "t.json"); })
                .find("pre-tokenizer"),
            std::string::npos);
}

// Logits of the first and last rows after a causal forward of `ids`.
std::vector<float> logits(const Model& model, const std::vector<std::int32_t>& ids) {
  Transformer tf(model);
  KvCache cache(model, static_cast<std::int64_t>(ids.size()));
  std::vector<ForwardRow> rows;
  for (std::size_t i = 0; i < ids.size(); ++i)
    rows.push_back({ids[i], static_cast<std::int32_t>(i), static_cast<std::int32_t>(i + 1), &cache});
  const std::vector<std::int32_t> wanted = {0, static_cast<std::int32_t>(ids.size() - 1)};
  std::vector<float> out(static_cast<std::size_t>(2 * model.hparams().n_vocab));
  tf.forward(rows, wanted, out.data());
  return out;
}

TEST(Import, DefaultModelFolderGivesTheDefaultModel) {
  const fs::path dir = temp_dir("default");
  import_hf_checkpoint(kDefaultExport, dir / "imported.gguf", {});
  const GgufFile want = GgufFile::open(fs::path(BITRUN_SOURCE_DIR) / "models" / "default.gguf");
  const GgufFile got = GgufFile::open(dir / "imported.gguf");
  // The same tensors, bit for bit: packed codes with their scale, float tensors as F32.
  ASSERT_EQ(got.tensors().size(), want.tensors().size());
  for (const GgufTensorInfo& t : want.tensors()) {
    const GgufTensorInfo* g = got.find_tensor(t.name);
    ASSERT_NE(g, nullptr) << t.name;
    EXPECT_EQ(g->type, t.type) << t.name;
    EXPECT_EQ(g->ne, t.ne) << t.name;
    ASSERT_EQ(g->bytes, t.bytes) << t.name;
    EXPECT_EQ(std::memcmp(got.tensor_data(*g), want.tensor_data(t), t.bytes), 0) << t.name;
  }
  for (const char* key : {"tokenizer.ggml.mask_token_id", "diffusion.block_size", "tokenizer.ggml.bos_token_id",
                          "tokenizer.ggml.eos_token_id", "bitnet-b1.58.context_length", "bitnet-b1.58.block_count"})
    EXPECT_EQ(got.opt_u64(key), want.opt_u64(key)) << key;
  EXPECT_EQ(got.opt_string("diffusion.attention"), want.opt_string("diffusion.attention"));
  EXPECT_EQ(got.opt_bool("diffusion.shift_logits"), want.opt_bool("diffusion.shift_logits"));

  auto backend = make_reference_backend({});
  auto a = Model::load(dir / "imported.gguf", *backend);
  auto b = Model::load(fs::path(BITRUN_SOURCE_DIR) / "models" / "default.gguf", *backend);
  const std::string text = "Once upon a time, there was a little dog named Max. He liked to run and jump.";
  const auto ids = a->tokenizer().encode(text, true, false);
  EXPECT_EQ(ids, b->tokenizer().encode(text, true, false));
  EXPECT_EQ(logits(*a, ids), logits(*b, ids));
  EXPECT_EQ(a->tokenizer().vocab().tokens, b->tokenizer().vocab().tokens);
  EXPECT_EQ(a->tokenizer().vocab().types, b->tokenizer().vocab().types);
}

// A copy of the default model's folder with one file replaced.
fs::path default_copy(const std::string& name) {
  const fs::path dir = temp_dir(name);
  for (const auto& e : fs::directory_iterator(kDefaultExport)) fs::copy_file(e.path(), dir / e.path().filename());
  return dir;
}

TEST(Import, NamesWhatIsWrong) {
  auto expect = [](const fs::path& dir, const std::string& what, ImportOptions options = {}) {
    const std::string msg = error_message<Error>([&] { import_hf_checkpoint(dir, dir / "out.gguf", options); });
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
    EXPECT_FALSE(fs::exists(dir / "out.gguf"));
  };
  fs::path dir = default_copy("rope-scaling");
  std::string config = read_text(dir / "config.json");
  write_text(dir / "config.json", config.substr(0, config.rfind('}')) + ", \"rope_scaling\": {\"type\": \"llama3\"}}");
  expect(dir, "rope_scaling is set");

  dir = default_copy("head-dim");
  config = read_text(dir / "config.json");
  write_text(dir / "config.json", config.replace(config.find("\"head_dim\": 32"), 14, "\"head_dim\": 64"));
  expect(dir, "head_dim 64 is not hidden_size / num_attention_heads (32)");

  dir = default_copy("arch");
  write_text(dir / "config.json", R"({"architectures": ["MambaForCausalLM"], "model_type": "mamba"})");
  expect(dir, "architecture 'MambaForCausalLM'");

  dir = default_copy("missing-tokenizer");
  fs::remove(dir / "tokenizer.json");
  expect(dir, "tokenizer.json: cannot open");

  dir = default_copy("float-type");
  ImportOptions q8;
  q8.weight_type = GgmlType::Q8_0;
  expect(dir, "--type must be", q8);

  dir = default_copy("mask");
  ImportOptions mask;
  mask.mask_token = "<nope>";
  expect(dir, "--mask-token '<nope>' is not a token", mask);

  // Tensors: one unknown, one missing, one of the wrong shape, a packed weight without its scale.
  const auto ckpt = SafetensorsCheckpoint::open(kDefaultExport);
  auto entries_except = [&](const std::string& skip) {
    std::vector<Entry> out;
    for (const SafetensorsTensor* t : ckpt.tensors())
      if (t->name != skip)
        out.push_back({t->name, safetensors_dtype_name(t->dtype), t->shape, {t->data, t->data + t->bytes}, {}});
    return out;
  };
  dir = default_copy("unknown-tensor");
  auto entries = entries_except("");
  entries.push_back({"model.layers.0.mlp.experts.0.weight", "F32", {1}, f32_bytes({0}), {}});
  write_safetensors(dir / "model.safetensors", entries);
  expect(dir, "unknown tensor 'model.layers.0.mlp.experts.0.weight'");

  dir = default_copy("missing-tensor");
  write_safetensors(dir / "model.safetensors", entries_except("model.layers.3.mlp.ffn_sub_norm.weight"));
  expect(dir, "no tensor for 'blk.3.ffn_sub_norm.weight'");

  dir = default_copy("no-scale");
  write_safetensors(dir / "model.safetensors", entries_except("model.layers.1.self_attn.k_proj.weight_scale"));
  expect(dir, "without 'model.layers.1.self_attn.k_proj.weight_scale'");

  dir = default_copy("shape");
  entries = entries_except("model.norm.weight");
  entries.push_back({"model.norm.weight", "F32", {127}, f32_bytes(std::vector<float>(127, 1.0f)), {}});
  write_safetensors(dir / "model.safetensors", entries);
  expect(dir, "'model.norm.weight' [127] F32: expected shape [128]");
}

// stories260K (llama, float weights) as a LlamaForCausalLM folder in Hugging Face's layout (query and key rows in
// rotate-half order per head), imported with f32 projections: the same logits as the GGUF it came from.
TEST(Import, LlamaFolderImportsToTheSameLogits) {
  const fs::path gguf_path = shared_path("models/stories260K.gguf");
  if (!fs::exists(gguf_path)) GTEST_SKIP() << "shared file " << gguf_path << " is absent";
  const GgufFile src = GgufFile::open(gguf_path);
  auto backend = make_reference_backend({});
  auto original = Model::load(gguf_path, *backend);
  const ModelHparams& hp = original->hparams();
  const fs::path dir = temp_dir("llama");
  std::vector<Entry> entries;
  auto floats = [&](const GgufTensorInfo& t) {
    std::vector<float> v(static_cast<std::size_t>(t.n_elements()));
    dequantize(t.type, src.tensor_data(t), t.bytes, t.row_len(), t.n_rows(), v.data());
    return v;
  };
  const std::map<std::string, std::string> names = {
      {"attn_q", "self_attn.q_proj"}, {"attn_k", "self_attn.k_proj"}, {"attn_v", "self_attn.v_proj"},
      {"attn_output", "self_attn.o_proj"}, {"ffn_gate", "mlp.gate_proj"}, {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"}, {"attn_norm", "input_layernorm"}, {"ffn_norm", "post_attention_layernorm"}};
  for (const GgufTensorInfo& t : src.tensors()) {
    std::string name;
    std::vector<float> v = floats(t);
    if (t.name == "token_embd.weight") name = "model.embed_tokens.weight";
    else if (t.name == "output.weight") name = "lm_head.weight";
    else if (t.name == "output_norm.weight") name = "model.norm.weight";
    else {
      const auto dot = t.name.find('.', 4);
      const std::string layer = t.name.substr(4, dot - 4), kind = t.name.substr(dot + 1, t.name.rfind('.') - dot - 1);
      name = "model.layers." + layer + "." + names.at(kind) + ".weight";
      if (kind == "attn_q" || kind == "attn_k") {   // GGUF adjacent pairs -> HF halves
        const std::int64_t cols = t.row_len(), rows = t.n_rows(), hd = hp.head_dim, half = hd / 2;
        std::vector<float> hf(v.size());
        for (std::int64_t h = 0; h < rows / hd; ++h)
          for (std::int64_t j = 0; j < half; ++j)
            for (std::int64_t k = 0; k < 2; ++k)
              std::copy_n(v.begin() + (h * hd + 2 * j + k) * cols, cols, hf.begin() + (h * hd + k * half + j) * cols);
        v = hf;
      }
    }
    std::vector<std::int64_t> shape(t.ne.rbegin(), t.ne.rend());
    while (shape.size() > 1 && shape.front() == 1) shape.erase(shape.begin());
    entries.push_back({name, "F32", shape, f32_bytes(v), {}});
  }
  write_safetensors(dir / "model.safetensors", entries);
  Json config = Json::object();
  Json archs = Json::array();
  archs.push_back("LlamaForCausalLM");
  config["architectures"] = archs;
  config["model_type"] = "llama";
  config["hidden_size"] = Json(hp.n_embd);
  config["intermediate_size"] = Json(hp.n_ff);
  config["num_hidden_layers"] = Json(hp.n_layer);
  config["num_attention_heads"] = Json(hp.n_head);
  config["num_key_value_heads"] = Json(hp.n_head_kv);
  config["max_position_embeddings"] = Json(hp.n_ctx_train);
  config["vocab_size"] = Json(hp.n_vocab);
  config["rms_norm_eps"] = Json(static_cast<double>(hp.rms_eps));
  config["rope_theta"] = Json(static_cast<double>(hp.rope_freq_base));
  config["bos_token_id"] = Json(static_cast<std::int64_t>(original->tokenizer().vocab().bos));
  config["eos_token_id"] = Json(static_cast<std::int64_t>(original->tokenizer().vocab().eos));
  write_text(dir / "config.json", config.dump());
  write_text(dir / "tokenizer.json", tokenizer_json(original->tokenizer().vocab()).dump());
  ImportOptions f32;
  f32.weight_type = GgmlType::F32;
  import_hf_checkpoint(dir, dir / "imported.gguf", f32);
  auto imported = Model::load(dir / "imported.gguf", *backend);
  const std::vector<std::int32_t> ids = original->tokenizer().encode("Lily and Ben went to the park to play.", true, false);
  EXPECT_EQ(imported->tokenizer().encode("Lily and Ben went to the park to play.", true, false), ids);
  EXPECT_EQ(logits(*imported, ids), logits(*original, ids));
}

}  // namespace
}  // namespace bitrun
