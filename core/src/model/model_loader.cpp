// Model::load: reads hyper-parameters and tensors from a validated GGUF file, checks every shape against the
// architecture, converts weights to what the graph computes with, and has the backend pack the ternary ones.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <string>

#include "bitrun/base/error.hpp"
#include "bitrun/gguf/ggml_types.hpp"
#include "bitrun/gguf/gguf.hpp"
#include "bitrun/base/log.hpp"
#include "bitrun/model/model.hpp"
#include "bitrun/tokenizer/tokenizer.hpp"
#include "bitrun/base/aligned.hpp"
#include "bitrun/base/parallel_slices.hpp"

namespace bitrun {
namespace {

class Loader {
 public:
  Loader(const GgufFile& file, const ArchitectureSpec& arch, const Backend& backend, ModelLoadOptions options)
      : file_(file), arch_(arch), backend_(backend), options_(options) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw FormatError(file_.path().string() + ": " + what);
  }

  std::int64_t key_int(const std::string& suffix, std::optional<std::int64_t> fallback = std::nullopt) const {
    const std::string key = arch_.name + "." + suffix;
    auto v = file_.opt_u64(key);
    if (!v) {
      if (fallback) return *fallback;
      fail("missing key '" + key + "'");
    }
    if (*v == 0 || *v > (std::uint64_t{1} << 31)) fail("key '" + key + "' has implausible value " + std::to_string(*v));
    return static_cast<std::int64_t>(*v);
  }

  float key_float(const std::string& suffix, float fallback) const {
    auto v = file_.opt_f64(arch_.name + "." + suffix);
    return v ? static_cast<float>(*v) : fallback;
  }

  const GgufTensorInfo& tensor(const std::string& name, std::vector<std::int64_t> expected_ne) const {
    const GgufTensorInfo* t = file_.find_tensor(name);
    if (!t) fail("missing tensor '" + name + "'");
    // Trailing dimensions of size 1 are equivalent (a 1-D norm may be stored as [n, 1]).
    std::vector<std::int64_t> ne = t->ne;
    while (ne.size() > expected_ne.size() && ne.back() == 1) ne.pop_back();
    if (ne != expected_ne) {
      auto shape = [](const std::vector<std::int64_t>& v) {
        std::string s = "[";
        for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
        return s + "]";
      };
      fail("tensor '" + name + "' has shape " + shape(t->ne) + ", expected " + shape(expected_ne));
    }
    return *t;
  }

  std::vector<float> floats(const GgufTensorInfo& t) const {
    std::vector<float> out(static_cast<std::size_t>(t.n_elements()));
    dequantize(t.type, file_.tensor_data(t), t.bytes, t.row_len(), t.n_rows(), out.data());
    return out;
  }

  std::vector<float> vector(const std::string& name, std::int64_t n) const { return floats(tensor(name, {n})); }

  // One scale per row of a ternary-typed tensor: its per-tensor scale, or its block scales, which must agree within
  // each row except in blocks whose codes are all zero (their scale never matters).
  std::vector<float> row_scales(const GgufTensorInfo& t) const {
    const std::int64_t cols = t.row_len(), n_rows = t.n_rows();
    const std::uint8_t* data = file_.tensor_data(t);
    const TernaryScales ts = ternary_scales(t.type, data, t.bytes, cols, n_rows);
    std::vector<float> rows(static_cast<std::size_t>(n_rows), ts.scales.at(0));
    if (ts.scale_block >= cols * n_rows) return rows;
    const std::int64_t per_row = cols / ts.scale_block;
    std::vector<std::int8_t> codes;
    for (std::int64_t r = 0; r < n_rows; ++r) {
      const float* s = ts.scales.data() + r * per_row;
      const bool uniform = std::all_of(s, s + per_row, [&](float v) { return std::fabs(v - s[0]) <= 1e-3f * std::fabs(s[0]); });
      rows[static_cast<std::size_t>(r)] = s[0];
      if (uniform) continue;
      codes.resize(static_cast<std::size_t>(cols));
      decode_ternary_rows(t.type, data, t.bytes, cols, n_rows, r, 1, codes.data());
      bool have = false;
      for (std::int64_t b = 0; b < per_row; ++b) {
        const std::int8_t* c = codes.data() + b * ts.scale_block;
        if (std::all_of(c, c + ts.scale_block, [](std::int8_t v) { return v == 0; })) continue;
        if (!have) {
          rows[static_cast<std::size_t>(r)] = s[b];
          have = true;
        } else if (std::fabs(s[b] - rows[static_cast<std::size_t>(r)]) > 1e-3f * std::fabs(s[b])) {
          fail("tensor '" + t.name + "': block scales differ within row " + std::to_string(r) +
               "; bitrun's ternary kernels need one scale per row (BitNet models use one per tensor)");
        }
      }
    }
    return rows;
  }

  Linear linear(const std::string& base, std::int64_t rows, std::int64_t cols) const {
    const GgufTensorInfo& t = tensor(base + ".weight", {cols, rows});
    Linear lin;
    lin.rows = rows;
    lin.cols = cols;
    const bool ternary_type = type_traits(t.type).ternary;
    if (ternary_type && !arch_.ternary_projections)
      fail("tensor '" + t.name + "' is ternary but architecture '" + arch_.name + "' expects float weights");
    if (ternary_type) {
      // Streamed row by row into the backend's layout: no expanded copy of a large matrix.
      const std::vector<float> scales = row_scales(t);
      const std::uint8_t* data = file_.tensor_data(t);
      TernaryMatrixView view{rows, cols, nullptr, scales.data(), [&](std::int64_t r, std::int8_t* out) {
                               decode_ternary_rows(t.type, data, t.bytes, cols, rows, r, 1, out);
                             }};
      if (t.type == GgmlType::I2_S) view.i2s = data;   // backends with a 2-bit layout repack it without decoding
      lin.ternary = backend_.pack_ternary(view);
      file_.release(t);
    } else if (arch_.ternary_projections && options_.ternarize_float_weights) {
      const std::vector<float> w = floats(t);
      const TernaryTensor tt = ternarize(w.data(), cols, rows);   // one scale per tensor
      const std::vector<float> scales(static_cast<std::size_t>(rows), tt.scales.at(0));
      lin.ternary = backend_.pack_ternary(TernaryMatrixView{rows, cols, tt.codes.data(), scales.data()});
    } else {
      lin.dense = floats(t);
    }
    // llama.cpp, which defines TQ1_0/TQ2_0, quantizes activations per 256-block for them; bitnet.cpp (I2_S)
    // and BitNet training quantize per token. Each file computes the function its engine defines.
    if (t.type == GgmlType::TQ1_0 || t.type == GgmlType::TQ2_0) lin.activation_block = 256;
    if (const GgufTensorInfo* scale = file_.find_tensor(base + ".scale")) {
      if (scale->n_elements() != 1) fail("tensor '" + scale->name + "' must hold one value");
      lin.output_scale = floats(*scale)[0];
    }
    const GgufTensorInfo* u = file_.find_tensor(base + ".lrc_U");
    const GgufTensorInfo* v = file_.find_tensor(base + ".lrc_V");
    if ((u == nullptr) != (v == nullptr)) fail("tensor '" + base + "' has only one of lrc_U / lrc_V");
    if (u) {
      const std::int64_t rank = u->ne.at(0);
      tensor(u->name, {rank, rows});
      tensor(v->name, {rank, cols});
      lin.lrc_rank = rank;
      lin.lrc_u = floats(*u);
      const std::vector<float> v_rows = floats(*v);   // cols x rank
      lin.lrc_vt.resize(v_rows.size());
      for (std::int64_t i = 0; i < cols; ++i)
        for (std::int64_t r = 0; r < rank; ++r)
          lin.lrc_vt[static_cast<std::size_t>(r * cols + i)] = v_rows[static_cast<std::size_t>(i * rank + r)];
    }
    return lin;
  }

 private:
  const GgufFile& file_;
  const ArchitectureSpec& arch_;
  const Backend& backend_;
  ModelLoadOptions options_;
};

// The output projection for ternary architectures (their activations are int8 already): Q6_K blocks as stored,
// any other type int8 per row, decoded and quantized row by row from the file; else dense float.
Linear output_projection(const GgufFile& file, const GgufTensorInfo& t, const Backend& backend, bool int8) {
  Linear lin;
  lin.rows = t.n_rows();
  lin.cols = t.row_len();
  if (!int8) {
    lin.dense.resize(static_cast<std::size_t>(lin.rows * lin.cols));
    dequantize(t.type, file.tensor_data(t), t.bytes, lin.cols, lin.rows, lin.dense.data());
    return lin;
  }
  if (t.type == GgmlType::Q6_K) {
    try {
      lin.q6_k = backend.pack_q6_k(Q6kMatrixView{lin.rows, lin.cols, file.tensor_data(t)});
    } catch (const FormatError& e) {
      throw FormatError(file.path().string() + ": " + t.name + ": " + e.what());
    }
    file.release(t);
    return lin;
  }
  const std::uint64_t row_bytes = tensor_bytes(t.type, lin.cols, 1);
  const std::uint8_t* data = file.tensor_data(t);
  const bool f16 = t.type == GgmlType::F16;
  auto row_data = [&](std::int64_t r) { return data + static_cast<std::uint64_t>(r) * row_bytes; };
  auto row_values = [&](std::int64_t r, float* values) { dequantize(t.type, row_data(r), row_bytes, lin.cols, 1, values); };
  // Every row's absmax on the backend's threads (the first touch of the tensor's pages happens here too, each
  // thread mapping its slice's pages in one call first: see populate_pages).
  std::vector<float> absmax(static_cast<std::size_t>(lin.rows));
  parallel_slices(lin.rows, backend.threads(), [&](std::int64_t begin, std::int64_t end) {
    populate_pages(row_data(begin), static_cast<std::size_t>(end - begin) * row_bytes, false);
    std::vector<float> values(f16 ? 0 : static_cast<std::size_t>(lin.cols));
    for (std::int64_t r = begin; r < end; ++r) {
      float m = 0.0f;
      if (f16) {
        m = fp16_to_f32(fp16_absmax_bits(row_data(r), lin.cols));   // inf or NaN if the row holds one
      } else {
        row_values(r, values.data());
        for (float v : values) m = std::max(m, std::isnan(v) ? INFINITY : std::fabs(v));
      }
      absmax[static_cast<std::size_t>(r)] = m;
    }
  });
  std::vector<float> scale(static_cast<std::size_t>(lin.rows));
  for (std::int64_t r = 0; r < lin.rows; ++r) {
    const float m = absmax[static_cast<std::size_t>(r)];
    if (!std::isfinite(m))
      throw FormatError(file.path().string() + ": " + t.name + " row " + std::to_string(r) + " holds inf or NaN");
    // A row too small to scale (or zero) quantizes to zeros.
    scale[static_cast<std::size_t>(r)] = m >= 127.0f * FLT_MIN ? m / 127.0f : 0.0f;
  }
  TernaryMatrixView view{lin.rows, lin.cols, nullptr, scale.data(), [&](std::int64_t r, std::int8_t* out) {
                           const float s = scale[static_cast<std::size_t>(r)];
                           const float inv = s > 0.0f ? 1.0f / s : 0.0f;
                           if (f16) {
                             fp16_to_int8_scaled(row_data(r), lin.cols, inv, out);
                             return;
                           }
                           thread_local std::vector<float> values;
                           values.resize(static_cast<std::size_t>(lin.cols));
                           row_values(r, values.data());
                           // Round half to even by the 1.5 * 2^23 trick, as fp16_to_int8_scaled: |v * inv| is at
                           // most 127 plus a few ulps (the row is finite, checked above).
                           constexpr float kMagic = 12582912.0f;
                           for (std::int64_t k = 0; k < lin.cols; ++k)
                             out[k] = static_cast<std::int8_t>(
                                 static_cast<int>((values[static_cast<std::size_t>(k)] * inv + kMagic) - kMagic));
                         }};
  lin.int8 = backend.pack_int8(view);
  file.release(t);   // only the few rows embedding lookups touch come back
  return lin;
}

// diffusion.block_size (1..4096), diffusion.attention ("block-causal" or "causal"; else llama.cpp's
// <arch>.attention.causal: true = causal, false = block-causal, the only non-causal contract bitrun decodes) and
// diffusion.shift_logits. Any other value is a FormatError naming the key.
DiffusionMetadata read_diffusion_metadata(const GgufFile& file, const std::string& arch, const Loader& L) {
  DiffusionMetadata d;
  if (auto b = file.opt_u64("diffusion.block_size")) {
    if (*b < 1 || *b > 4096) L.fail("diffusion.block_size is " + std::to_string(*b) + ", expected 1..4096");
    d.block_size = static_cast<std::int32_t>(*b);
  }
  if (auto a = file.opt_string("diffusion.attention")) {
    if (*a == "block-causal") d.attention = DiffusionAttention::BlockCausal;
    else if (*a == "causal") d.attention = DiffusionAttention::Causal;
    else L.fail("diffusion.attention is '" + *a + "', expected 'block-causal' or 'causal'");
  } else if (auto causal = file.opt_bool(arch + ".attention.causal")) {
    d.attention = *causal ? DiffusionAttention::Causal : DiffusionAttention::BlockCausal;
  }
  if (auto shift = file.opt_bool("diffusion.shift_logits")) d.shift_logits = *shift;
  return d;
}

}  // namespace

void set_hparams_metadata(GgufWriter& out, const ModelHparams& hp) {
  const std::string& a = hp.architecture;
  auto u32 = [](std::int64_t v) { return GgufValue::u32(static_cast<std::uint32_t>(v)); };
  out.set("general.architecture", GgufValue::string(a));
  out.set(a + ".context_length", u32(hp.n_ctx_train));
  out.set(a + ".embedding_length", u32(hp.n_embd));
  out.set(a + ".block_count", u32(hp.n_layer));
  out.set(a + ".feed_forward_length", u32(hp.n_ff));
  out.set(a + ".attention.head_count", u32(hp.n_head));
  out.set(a + ".attention.head_count_kv", u32(hp.n_head_kv));
  out.set(a + ".rope.dimension_count", u32(hp.rope_dims));
  out.set(a + ".rope.freq_base", GgufValue::f32(hp.rope_freq_base));
  out.set(a + ".attention.layer_norm_rms_epsilon", GgufValue::f32(hp.rms_eps));
  out.set(a + ".vocab_size", u32(hp.n_vocab));
}

Model::Model(GgufFile file) : file_(std::move(file)) {}
Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::filesystem::path& path, const Backend& backend,
                                   ModelLoadOptions options) {
  return load(GgufFile::open(path), backend, options);
}

void Model::embed(std::int32_t token, float* out) const {
  if (token < 0 || token >= hparams_.n_vocab) throw Error("token id " + std::to_string(token) + " outside the vocabulary");
  // The row is copied out of the mapping first: a model file replaced while in use is then an error, not a SIGBUS.
  thread_local std::vector<std::uint8_t> row;
  row.resize(embd_row_bytes_);
  file_.copy_tensor_bytes(*token_embd_, static_cast<std::uint64_t>(token) * embd_row_bytes_, embd_row_bytes_,
                          row.data());
  dequantize(token_embd_->type, row.data(), embd_row_bytes_, hparams_.n_embd, 1, out);
}

std::unique_ptr<Model> Model::load(GgufFile file_arg, const Backend& backend, ModelLoadOptions options) {
  std::unique_ptr<Model> m(new Model(std::move(file_arg)));
  const GgufFile& file = m->file_;
  const std::string arch_name = file.opt_string("general.architecture").value_or("");
  const ArchitectureSpec* arch = find_architecture(arch_name);
  if (!arch) {
    std::string known;
    for (const auto& n : supported_architectures()) known += (known.empty() ? "" : ", ") + n;
    throw FormatError(file.path().string() + ": unsupported architecture '" + arch_name + "' (supported: " + known +
                      ")");
  }
  Loader L(file, *arch, backend, options);
  m->arch_ = arch;
  m->backend_ = &backend;
  m->name_ = file.opt_string("general.name").value_or(file.path().stem().string());

  ModelHparams& hp = m->hparams_;
  hp.architecture = arch_name;
  hp.n_embd = L.key_int("embedding_length");
  hp.n_layer = L.key_int("block_count");
  hp.n_ff = L.key_int("feed_forward_length");
  hp.n_head = L.key_int("attention.head_count");
  hp.n_head_kv = L.key_int("attention.head_count_kv", hp.n_head);
  hp.n_ctx_train = L.key_int("context_length", 2048);
  if (hp.n_embd % hp.n_head != 0) L.fail("embedding_length is not a multiple of attention.head_count");
  if (hp.n_head % hp.n_head_kv != 0) L.fail("attention.head_count is not a multiple of attention.head_count_kv");
  hp.head_dim = hp.n_embd / hp.n_head;
  hp.rope_dims = L.key_int("rope.dimension_count", hp.head_dim);
  if (hp.rope_dims > hp.head_dim || hp.rope_dims % 2 != 0)
    L.fail("rope.dimension_count " + std::to_string(hp.rope_dims) + " does not fit head size " +
           std::to_string(hp.head_dim));
  hp.rope_freq_base = L.key_float("rope.freq_base", 10000.0f);
  hp.rms_eps = L.key_float("attention.layer_norm_rms_epsilon", 1e-5f);
  if (!(hp.rms_eps > 0.0f) || !(hp.rope_freq_base > 0.0f)) L.fail("rms epsilon and rope base must be positive");

  const GgufTensorInfo* embd = file.find_tensor("token_embd.weight");
  if (!embd) L.fail("missing tensor 'token_embd.weight'");
  hp.n_vocab = embd->ne.size() >= 2 ? embd->ne[1] : 0;
  L.tensor("token_embd.weight", {hp.n_embd, hp.n_vocab});
  m->token_embd_ = embd;
  m->embd_row_bytes_ = tensor_bytes(embd->type, hp.n_embd, 1);
  if (type_traits(embd->type).ternary) L.fail("token_embd.weight cannot be ternary");

  m->tokenizer_ = Tokenizer::create(vocab_from_gguf(file));
  if (m->tokenizer_->vocab_size() > hp.n_vocab)
    L.fail("tokenizer has " + std::to_string(m->tokenizer_->vocab_size()) + " tokens but the embedding only " +
           std::to_string(hp.n_vocab));

  // Diffusion metadata before the (slow) weights, so a bad value fails at once.
  if (auto mask = file.opt_u64("tokenizer.ggml.mask_token_id")) {
    if (*mask >= static_cast<std::uint64_t>(hp.n_vocab)) L.fail("tokenizer.ggml.mask_token_id is out of range");
    m->mask_token_ = static_cast<std::int32_t>(*mask);
  }
  m->diffusion_ = read_diffusion_metadata(file, arch_name, L);

  const GgufTensorInfo* out = file.find_tensor("output.weight");
  hp.tied_output = out == nullptr;
  if (out) L.tensor("output.weight", {hp.n_embd, hp.n_vocab});
  else out = embd;
  if (type_traits(out->type).ternary) L.fail(out->name + " cannot be ternary");
  // First, so its float pages are released before the projections are packed (peak memory).
  m->output_ = output_projection(file, *out, backend, arch->ternary_projections && options.int8_output);
  const std::int64_t q_dim = hp.n_head * hp.head_dim, kv_dim = hp.n_head_kv * hp.head_dim;
  // The last layer must exist before anything is sized by block_count (a crafted count must not allocate).
  L.tensor("blk." + std::to_string(hp.n_layer - 1) + ".attn_norm.weight", {hp.n_embd});
  m->layers_.resize(static_cast<std::size_t>(hp.n_layer));
  for (std::int64_t i = 0; i < hp.n_layer; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    LayerWeights& lw = m->layers_[static_cast<std::size_t>(i)];
    lw.attn_norm = L.vector(p + "attn_norm.weight", hp.n_embd);
    lw.ffn_norm = L.vector(p + "ffn_norm.weight", hp.n_embd);
    if (arch->sub_norms) {
      lw.attn_sub_norm = L.vector(p + "attn_sub_norm.weight", q_dim);
      lw.ffn_sub_norm = L.vector(p + "ffn_sub_norm.weight", hp.n_ff);
    }
    lw.wq = L.linear(p + "attn_q", q_dim, hp.n_embd);
    lw.wk = L.linear(p + "attn_k", kv_dim, hp.n_embd);
    lw.wv = L.linear(p + "attn_v", kv_dim, hp.n_embd);
    lw.wo = L.linear(p + "attn_output", hp.n_embd, q_dim);
    lw.w_gate = L.linear(p + "ffn_gate", hp.n_ff, hp.n_embd);
    lw.w_up = L.linear(p + "ffn_up", hp.n_ff, hp.n_embd);
    lw.w_down = L.linear(p + "ffn_down", hp.n_embd, hp.n_ff);
  }
  m->output_norm_ = L.vector("output_norm.weight", hp.n_embd);
  logger("model")->info("loaded {} ({}): {} layers, embd {}, ffn {}, heads {}/{}, vocab {}", m->name_, arch_name,
                        hp.n_layer, hp.n_embd, hp.n_ff, hp.n_head, hp.n_head_kv, hp.n_vocab);
  return m;
}

}  // namespace bitrun
