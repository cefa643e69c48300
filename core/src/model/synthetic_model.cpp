#include "bitrun/model/synthetic_model.hpp"

#include <cmath>

#include "bitrun/model/architecture.hpp"
#include "bitrun/base/error.hpp"
#include "bitrun/gguf/gguf.hpp"
#include "bitrun/model/model.hpp"

namespace bitrun {
namespace {

// splitmix64: fast, seedable, good enough for benchmark weights.
struct Rng {
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  float uniform() { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }   // [0, 1)
};

// Random ternary matrix (about 40% zeros, like trained BitNet weights) with a scale that keeps activations near
// unit size, so a deep random model does not overflow.
TernaryTensor random_ternary(Rng& rng, std::int64_t cols, std::int64_t rows) {
  TernaryTensor t;
  t.row_len = cols;
  t.n_rows = rows;
  t.codes.resize(static_cast<std::size_t>(cols * rows));
  for (std::size_t i = 0; i < t.codes.size(); i += 16) {
    std::uint64_t r = rng.next();
    for (std::size_t j = i; j < std::min(i + 16, t.codes.size()); ++j, r >>= 4) {
      const unsigned v = r & 15;   // 0..5 -> 0 (6/16), else +-1
      t.codes[j] = v < 6 ? 0 : (v & 1 ? 1 : -1);
    }
  }
  t.scale_block = cols * rows;
  t.scales = {1.0f / std::sqrt(0.6f * static_cast<float>(cols))};
  return t;
}

constexpr const char* kMaskText = "|<MASK>|";   // the name Fast-dLLM v2 and WrinkleFree give their mask token

std::vector<std::string> filler_vocab(std::int64_t n_vocab) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) tokens.push_back(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">");
  for (std::int64_t i = static_cast<std::int64_t>(tokens.size()); i < n_vocab; ++i)
    tokens.push_back("\xe2\x96\x81t" + std::to_string(i));   // "▁t<N>": distinct, decodable pieces
  tokens.back() = kMaskText;
  return tokens;
}

}  // namespace

std::vector<std::string> synthetic_preset_names() { return {"bitnet-2b-4t", "bitnet-700m", "bitnet-tiny"}; }

SyntheticSpec synthetic_preset(const std::string& name) {
  SyntheticSpec s;
  s.preset = name;
  if (name == "bitnet-2b-4t") {
    s.n_embd = 2560, s.n_ff = 6912, s.n_layer = 30, s.n_head = 20, s.n_head_kv = 5, s.n_vocab = 128256;
  } else if (name == "bitnet-700m") {   // bitnet_b1_58-large-like shapes with the 2B-4T vocabulary
    s.n_embd = 1536, s.n_ff = 4096, s.n_layer = 24, s.n_head = 16, s.n_head_kv = 4, s.n_vocab = 32000;
  } else if (name == "bitnet-tiny") {
    s.n_embd = 256, s.n_ff = 768, s.n_layer = 2, s.n_head = 4, s.n_head_kv = 2, s.n_vocab = 1024, s.n_ctx = 512;
    s.rope_freq_base = 10000.0f;
  } else {
    std::string known;
    for (const auto& n : synthetic_preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error("unknown synthetic preset '" + name + "' (known: " + known + ")");
  }
  return s;
}

void write_synthetic_model(const SyntheticSpec& spec, const std::filesystem::path& path, std::uint64_t seed,
                           const std::function<void(std::size_t, std::size_t)>& progress) {
  const ArchitectureSpec* arch = find_architecture(spec.architecture);
  if (!arch || !arch->ternary_projections) throw Error("synthetic models need a ternary architecture");
  if (!type_traits(spec.weight_type).ternary) throw Error("synthetic models have ternary projection weights");
  const std::string& a = spec.architecture;
  ModelHparams hp;
  hp.architecture = a;
  hp.n_vocab = spec.n_vocab, hp.n_embd = spec.n_embd, hp.n_layer = spec.n_layer, hp.n_ff = spec.n_ff;
  hp.n_head = spec.n_head, hp.n_head_kv = spec.n_head_kv, hp.n_ctx_train = spec.n_ctx;
  hp.rope_dims = spec.n_embd / spec.n_head;
  hp.rope_freq_base = spec.rope_freq_base;
  hp.rms_eps = 1e-5f;
  GgufWriter w;
  set_hparams_metadata(w, hp);
  w.set("general.name", GgufValue::string("synthetic-" + spec.preset));
  std::vector<std::string> tokens = filler_vocab(spec.n_vocab);
  std::vector<std::int32_t> types(tokens.size(), static_cast<std::int32_t>(1));
  types[0] = 2;
  types[1] = types[2] = 3;
  for (int b = 0; b < 256; ++b) types[static_cast<std::size_t>(3 + b)] = 6;
  types.back() = 3;   // |<MASK>|: a control token, never produced from plain text
  w.set("tokenizer.ggml.model", GgufValue::string("llama"));
  w.set("tokenizer.ggml.tokens", GgufValue::string_array(std::move(tokens)));
  w.set("tokenizer.ggml.scores", GgufValue::f32_array(std::vector<float>(types.size(), 0.0f)));
  w.set("tokenizer.ggml.token_type", GgufValue::i32_array(types));
  w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(1));
  w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(2));
  w.set("tokenizer.ggml.unknown_token_id", GgufValue::u32(0));
  if (spec.diffusion_metadata) {
    w.set("tokenizer.ggml.mask_token_id", GgufValue::u32(static_cast<std::uint32_t>(spec.n_vocab - 1)));
    w.set("diffusion.block_size", GgufValue::u32(32));
    w.set("diffusion.attention", GgufValue::string("block-causal"));
    w.set("diffusion.shift_logits", GgufValue::boolean(true));
  }

  Rng rng{seed};
  const std::size_t total = 2 + static_cast<std::size_t>(spec.n_layer) * 11;
  std::size_t done = 0;
  auto step = [&] {
    if (progress) progress(++done, total);
  };
  {
    std::vector<float> embd(static_cast<std::size_t>(spec.n_vocab * spec.n_embd));
    for (float& v : embd) v = (rng.uniform() - 0.5f) * 0.1f;
    w.add_tensor("token_embd.weight", {spec.n_embd, spec.n_vocab}, spec.embedding_type,
                 encode(spec.embedding_type, embd.data(), spec.n_embd, spec.n_vocab));
  }
  step();
  w.add_f32_tensor("output_norm.weight", {spec.n_embd}, std::vector<float>(static_cast<std::size_t>(spec.n_embd), 1.0f));
  step();
  const std::int64_t q_dim = spec.n_embd, kv_dim = spec.n_head_kv * hp.rope_dims;   // rope_dims = head size here
  for (std::int64_t l = 0; l < spec.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    for (const auto& [name, len] : {std::pair<std::string, std::int64_t>{"attn_norm", spec.n_embd},
                                    {"ffn_norm", spec.n_embd}, {"attn_sub_norm", q_dim}, {"ffn_sub_norm", spec.n_ff}}) {
      w.add_f32_tensor(p + name + ".weight", {len}, std::vector<float>(static_cast<std::size_t>(len), 1.0f));
      step();
    }
    const struct { const char* name; std::int64_t rows, cols; } projections[] = {
        {"attn_q", q_dim, spec.n_embd},     {"attn_k", kv_dim, spec.n_embd}, {"attn_v", kv_dim, spec.n_embd},
        {"attn_output", spec.n_embd, q_dim}, {"ffn_gate", spec.n_ff, spec.n_embd}, {"ffn_up", spec.n_ff, spec.n_embd},
        {"ffn_down", spec.n_embd, spec.n_ff}};
    for (const auto& pr : projections) {
      w.add_tensor(p + pr.name + ".weight", {pr.cols, pr.rows}, spec.weight_type,
                   encode_ternary(spec.weight_type, random_ternary(rng, pr.cols, pr.rows)));
      step();
    }
  }
  w.write(path);
}

}  // namespace bitrun
