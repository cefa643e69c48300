#include "bitrun/import/hf_import.hpp"

#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "bitrun/model/architecture.hpp"
#include "bitrun/base/error.hpp"
#include "bitrun/gguf/gguf.hpp"
#include "bitrun/import/hf_tokenizer.hpp"
#include "bitrun/base/json.hpp"
#include "bitrun/model/model.hpp"
#include "bitrun/import/safetensors.hpp"

namespace bitrun {
namespace {

// The model's shapes and settings from config.json.
struct ModelConfig {
  ModelHparams hp;   // architecture (the GGUF one), shapes, context, RoPE, eps, tied output
  std::optional<std::int64_t> mask_token_id, block_size;
  std::string diffusion_attention = "block-causal";
  bool shift_logits = true;
};

ModelConfig read_config(const Json& c, const std::filesystem::path& path, const ImportOptions& options) {
  auto fail = [&](const std::string& what) -> void { throw FormatError(path.string() + ": " + what); };
  auto integer = [&](std::string_view key, std::optional<std::int64_t> fallback = std::nullopt) {
    const Json& v = c.get(key);
    if (v.is_null() && fallback) return *fallback;
    if (!v.is_integer() || v.as_int() <= 0 || v.as_int() > (std::int64_t{1} << 31))
      fail(std::string(key) + " is " + (v.is_null() ? "missing" : "not a positive integer"));
    return v.as_int();
  };
  ModelConfig m;
  const Json& archs = c.get("architectures");
  const std::string hf_arch =
      archs.is_array() && !archs.as_array().empty() && archs.as_array()[0].is_string() ? archs.as_array()[0].as_string() : "";
  const std::string model_type = c.get("model_type").is_string() ? c.get("model_type").as_string() : "";
  const std::string act = c.get("hidden_act").is_string() ? c.get("hidden_act").as_string() : "";
  const bool bitnet = hf_arch == "BitNetForCausalLM" || hf_arch == "BitnetForCausalLM" || model_type == "bitnet";
  const bool llama = hf_arch == "LlamaForCausalLM" || model_type == "llama";
  if (options.arch) m.hp.architecture = *options.arch;
  else if (bitnet) m.hp.architecture = act == "silu" ? "bitnet" : "bitnet-b1.58";
  else if (llama) m.hp.architecture = "llama";
  else
    fail("architecture '" + hf_arch + "' (model_type '" + model_type +
         "') is not supported: BitNetForCausalLM, LlamaForCausalLM, or a variant with model_type bitnet or llama "
         "(--arch names the GGUF architecture to write)");
  const ArchitectureSpec* spec = find_architecture(m.hp.architecture);
  if (!spec) fail("--arch '" + m.hp.architecture + "' is not an architecture bitrun runs");
  if (bitnet && !act.empty() && act != "relu2" && act != "silu") fail("hidden_act '" + act + "' is not supported (relu2, silu)");
  if (!c.get("rope_scaling").is_null())
    fail("rope_scaling is set; scaled RoPE (long-context variants) is not supported");
  m.hp.n_embd = integer("hidden_size");
  m.hp.n_layer = integer("num_hidden_layers");
  m.hp.n_ff = integer("intermediate_size");
  m.hp.n_head = integer("num_attention_heads");
  m.hp.n_head_kv = integer("num_key_value_heads", m.hp.n_head);
  m.hp.head_dim = integer("head_dim", m.hp.n_embd / m.hp.n_head);
  m.hp.n_ctx_train = integer("max_position_embeddings", 2048);
  m.hp.n_vocab = integer("vocab_size");
  if (m.hp.n_head % m.hp.n_head_kv != 0) fail("num_attention_heads is not a multiple of num_key_value_heads");
  if (m.hp.head_dim * m.hp.n_head != m.hp.n_embd)
    fail("head_dim " + std::to_string(m.hp.head_dim) + " is not hidden_size / num_attention_heads (" +
         std::to_string(m.hp.n_embd / m.hp.n_head) + "); bitrun's graph needs the two equal");
  m.hp.rope_dims = m.hp.head_dim;
  if (c.get("rope_theta").is_number()) m.hp.rope_freq_base = static_cast<float>(c.get("rope_theta").as_double());
  if (c.get("rms_norm_eps").is_number()) m.hp.rms_eps = static_cast<float>(c.get("rms_norm_eps").as_double());
  m.hp.tied_output = c.get("tie_word_embeddings").is_bool() && c.get("tie_word_embeddings").as_bool();
  if (c.get("mask_token_id").is_integer()) m.mask_token_id = c.get("mask_token_id").as_int();
  for (const char* key : {"block_size", "bd_size"})
    if (c.get(key).is_integer()) m.block_size = integer(key);
  if (c.get("diffusion_attention").is_string()) m.diffusion_attention = c.get("diffusion_attention").as_string();
  // The contracts and bounds the loader accepts (diffusion.attention, diffusion.block_size).
  if (m.diffusion_attention != "block-causal" && m.diffusion_attention != "causal")
    fail("diffusion_attention '" + m.diffusion_attention + "' is neither block-causal nor causal");
  if (m.block_size && *m.block_size > 4096) fail("block_size " + std::to_string(*m.block_size) + " is over 4096");
  if (c.get("shift_logits").is_bool()) m.shift_logits = c.get("shift_logits").as_bool();
  return m;
}

// A source tensor's place in the GGUF file.
struct Target {
  std::string name;            // GGUF name
  std::string scale_name;      // the HF weight_scale that goes with a packed projection
  bool projection = false;
  bool query_key = false;      // q_proj / k_proj: llama's adjacent-pair RoPE wants their rows permuted
  std::int64_t heads = 0;      // for that permutation
  std::int64_t rows = 0, cols = 0;   // expected shape (out x in) of a 2-D tensor; cols 0 for a vector of `rows`
};

// Maps an HF tensor name; nullopt when it is a weight_scale (read with its weight) or a derived buffer.
std::optional<Target> map_tensor(const std::string& name, const ModelConfig& m, std::string& skipped_reason) {
  const std::int64_t q_dim = m.hp.n_head * m.hp.head_dim, kv_dim = m.hp.n_head_kv * m.hp.head_dim;
  if (name == "model.embed_tokens.weight") return Target{"token_embd.weight", "", false, false, 0, m.hp.n_vocab, m.hp.n_embd};
  if (name == "lm_head.weight") return Target{"output.weight", "", false, false, 0, m.hp.n_vocab, m.hp.n_embd};
  if (name == "model.norm.weight") return Target{"output_norm.weight", "", false, false, 0, m.hp.n_embd, 0};
  const std::string prefix = "model.layers.";
  if (name.rfind(prefix, 0) != 0) throw FormatError("unknown tensor '" + name + "'");
  const auto dot = name.find('.', prefix.size());
  const std::string layer = name.substr(prefix.size(), dot == std::string::npos ? std::string::npos : dot - prefix.size());
  if (dot == std::string::npos || layer.empty() || layer.find_first_not_of("0123456789") != std::string::npos ||
      layer.size() > 6 || std::stoll(layer) >= m.hp.n_layer)
    throw FormatError("tensor '" + name + "' names a layer outside the " + std::to_string(m.hp.n_layer) + " of config.json");
  const std::string rest = name.substr(dot + 1), blk = "blk." + layer + ".";
  struct Proj {
    const char* hf;
    const char* gguf;
    std::int64_t rows, cols;
    bool qk;
    std::int64_t heads;
  };
  const Proj projs[] = {{"self_attn.q_proj", "attn_q", q_dim, m.hp.n_embd, true, m.hp.n_head},
                        {"self_attn.k_proj", "attn_k", kv_dim, m.hp.n_embd, true, m.hp.n_head_kv},
                        {"self_attn.v_proj", "attn_v", kv_dim, m.hp.n_embd, false, 0},
                        {"self_attn.o_proj", "attn_output", m.hp.n_embd, q_dim, false, 0},
                        {"mlp.gate_proj", "ffn_gate", m.hp.n_ff, m.hp.n_embd, false, 0},
                        {"mlp.up_proj", "ffn_up", m.hp.n_ff, m.hp.n_embd, false, 0},
                        {"mlp.down_proj", "ffn_down", m.hp.n_embd, m.hp.n_ff, false, 0}};
  for (const Proj& p : projs) {
    const std::string base = p.hf;
    if (rest == base + ".weight")
      return Target{blk + p.gguf + ".weight", name.substr(0, name.size() - 7) + ".weight_scale", true, p.qk, p.heads,
                    p.rows, p.cols};
    if (rest == base + ".weight_scale") return std::nullopt;
    // Low-rank correction W + U V^T: U is out x rank, V in x rank (GGUF ne {rank, out} and {rank, in}).
    if (rest == base + ".lrc_U") return Target{blk + p.gguf + ".lrc_U", "", false, false, 0, p.rows, -1};
    if (rest == base + ".lrc_V") return Target{blk + p.gguf + ".lrc_V", "", false, false, 0, p.cols, -1};
  }
  if (rest == "input_layernorm.weight") return Target{blk + "attn_norm.weight", "", false, false, 0, m.hp.n_embd, 0};
  if (rest == "post_attention_layernorm.weight") return Target{blk + "ffn_norm.weight", "", false, false, 0, m.hp.n_embd, 0};
  if (rest == "self_attn.attn_sub_norm.weight") return Target{blk + "attn_sub_norm.weight", "", false, false, 0, q_dim, 0};
  if (rest == "mlp.ffn_sub_norm.weight") return Target{blk + "ffn_sub_norm.weight", "", false, false, 0, m.hp.n_ff, 0};
  if (rest == "self_attn.rotary_emb.inv_freq") {
    skipped_reason = "derived from rope_theta";
    return std::nullopt;
  }
  throw FormatError("unknown tensor '" + name + "'");
}

std::string shape_text(const std::vector<std::int64_t>& s) {
  std::string t = "[";
  for (std::size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + "]";
}

// HF rotate-half rows of a query/key projection in adjacent-pair order (llama's RoPE): within each head, row
// j of the first half and row j of the second become rows 2j and 2j + 1.
std::vector<float> to_adjacent_pairs(const std::vector<float>& w, std::int64_t heads, std::int64_t rows, std::int64_t cols) {
  std::vector<float> out(w.size());
  const std::int64_t hd = rows / heads, half = hd / 2;
  for (std::int64_t h = 0; h < heads; ++h)
    for (std::int64_t j = 0; j < half; ++j)
      for (std::int64_t k = 0; k < 2; ++k)
        std::copy_n(w.begin() + (h * hd + k * half + j) * cols, cols, out.begin() + (h * hd + 2 * j + k) * cols);
  return out;
}

}  // namespace

std::vector<std::int8_t> unpack_bitnet_u8(const std::uint8_t* packed, std::int64_t packed_rows, std::int64_t cols) {
  std::vector<std::int8_t> codes(static_cast<std::size_t>(4 * packed_rows * cols));
  for (std::int64_t i = 0; i < 4; ++i)
    for (std::int64_t r = 0; r < packed_rows; ++r)
      for (std::int64_t c = 0; c < cols; ++c) {
        const int code = (packed[r * cols + c] >> (2 * i)) & 3;
        if (code == 3)
          throw FormatError("packed ternary code 3 (unused by the format) at row " + std::to_string(r) + ", column " +
                            std::to_string(c));
        codes[static_cast<std::size_t>((i * packed_rows + r) * cols + c)] = static_cast<std::int8_t>(code - 1);
      }
  return codes;
}

void import_hf_checkpoint(const std::filesystem::path& dir, const std::filesystem::path& output,
                          const ImportOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  if (!std::filesystem::is_directory(dir)) throw Error(dir.string() + ": not a directory");
  const Json config = read_json_file((dir / "config.json").string());
  const ModelConfig m = read_config(config, dir / "config.json", options);
  const ArchitectureSpec& spec = *find_architecture(m.hp.architecture);
  const bool ternary_target = type_traits(options.weight_type).ternary;
  if (ternary_target && !spec.ternary_projections)
    throw Error("--type " + std::string(type_traits(options.weight_type).name) + " is for the ternary architectures; '" +
                m.hp.architecture + "' has float projections (choose f16, bf16 or f32)");
  const GgmlType t = options.weight_type;
  if (!ternary_target && t != GgmlType::F16 && t != GgmlType::BF16 && t != GgmlType::F32)
    throw Error("--type must be i2_s, tq1_0, tq2_0, f16, bf16 or f32");

  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(dir);
  GgufWriter writer;
  set_hparams_metadata(writer, m.hp);
  writer.set("general.name", GgufValue::string(config.get("_name_or_path").is_string()
                                                   ? config.get("_name_or_path").as_string()
                                                   : std::filesystem::absolute(dir).lexically_normal().filename().string()));

  const Json tokenizer = read_json_file((dir / "tokenizer.json").string());
  const Json tokenizer_config =   // optional
      std::filesystem::exists(dir / "tokenizer_config.json") ? read_json_file((dir / "tokenizer_config.json").string()) : Json();
  const HfTokenizerFacts facts = add_hf_tokenizer(writer, tokenizer, tokenizer_config, config, m.hp.n_vocab,
                                                  (dir / "tokenizer.json").string());
  std::optional<std::int64_t> mask = m.mask_token_id;
  if (options.mask_token) {
    const auto id = hf_token_id(tokenizer, *options.mask_token);
    if (!id) throw Error("--mask-token '" + *options.mask_token + "' is not a token of tokenizer.json");
    mask = *id;
  } else if (!mask && m.block_size) {
    mask = facts.mask_token;
  }
  if (m.block_size && !mask)
    throw Error((dir / "config.json").string() + ": a block size is set but no mask token: give --mask-token TOKEN");
  if (mask) {
    if (*mask < 0 || *mask >= facts.n_tokens) throw Error("mask token id " + std::to_string(*mask) + " is not a token id");
    writer.set("tokenizer.ggml.mask_token_id", GgufValue::u32(static_cast<std::uint32_t>(*mask)));
  }
  if (m.block_size) {
    writer.set("diffusion.block_size", GgufValue::u32(static_cast<std::uint32_t>(*m.block_size)));
    writer.set("diffusion.attention", GgufValue::string(m.diffusion_attention));
    writer.set("diffusion.shift_logits", GgufValue::boolean(m.shift_logits));
  }

  // Tensors, in a fixed order (name order of the source) so two imports write the same file.
  ImportProgress progress;
  const auto sources = ckpt.tensors();
  progress.tensors_total = sources.size();
  progress.bytes_total = ckpt.total_bytes();
  std::set<std::string> written, used_scales;
  for (const SafetensorsTensor* src : sources) {
    std::string skipped;
    std::optional<Target> target;
    try {
      target = map_tensor(src->name, m, skipped);
    } catch (const FormatError& e) {
      throw FormatError(src->file + ": " + e.what() + " (not part of the " + m.hp.architecture + " layout)");
    }
    if (target) {
      const std::string what = src->file + ": tensor '" + src->name + "' " + shape_text(src->shape) + " " +
                               safetensors_dtype_name(src->dtype);
      const bool matrix = target->cols != 0;
      const std::int64_t rows = target->rows;
      // lrc tensors: shape [rows, rank] with any rank.
      const std::int64_t cols = target->cols == -1 ? (src->shape.size() == 2 ? src->shape[1] : -1) : target->cols;
      const bool packed = target->projection && src->dtype == SafetensorsDtype::U8;
      const std::vector<std::int64_t> want = !matrix ? std::vector<std::int64_t>{rows}
                                             : packed ? std::vector<std::int64_t>{rows / 4, cols}
                                                      : std::vector<std::int64_t>{rows, cols};
      if (src->shape != want || (packed && rows % 4 != 0) || (matrix && cols <= 0))
        throw FormatError(what + ": expected shape " + shape_text(want) + " from config.json");
      std::vector<float> values;
      TernaryTensor ternary;
      bool have_ternary = false;
      if (packed) {
        if (!spec.ternary_projections) throw FormatError(what + ": packed ternary weights in a float architecture");
        const SafetensorsTensor* scale = ckpt.find(target->scale_name);
        if (!scale) throw FormatError(what + ": packed ternary weights without '" + target->scale_name + "'");
        // In double: an F64 scale then gives back the float it was made from, 1 / (1 / s) == s.
        double ws = 0.0;
        if (scale->elements() == 1 && scale->dtype == SafetensorsDtype::F64) std::memcpy(&ws, scale->data, 8);
        else if (scale->elements() == 1) ws = scale->to_floats()[0];
        if (scale->elements() != 1 || !(ws > 0.0) || !std::isfinite(ws))
          throw FormatError(scale->file + ": '" + scale->name + "' must hold one positive finite value");
        used_scales.insert(scale->name);
        try {
          ternary.codes = unpack_bitnet_u8(src->data, rows / 4, cols);
        } catch (const FormatError& e) {
          throw FormatError(what + ": " + e.what());
        }
        ternary.row_len = cols;
        ternary.n_rows = rows;
        ternary.scale_block = rows * cols;
        ternary.scales = {static_cast<float>(1.0 / ws)};   // the release's scale divides the integer product
        have_ternary = true;
      } else {
        if (src->dtype == SafetensorsDtype::U8 || src->dtype == SafetensorsDtype::I8 ||
            src->dtype == SafetensorsDtype::I16 || src->dtype == SafetensorsDtype::I32 ||
            src->dtype == SafetensorsDtype::I64 || src->dtype == SafetensorsDtype::Bool)
          throw FormatError(what + ": integer data where float weights belong");
        values = src->to_floats();
        if (target->query_key && !spec.neox_rope) values = to_adjacent_pairs(values, target->heads, rows, cols);
        if (target->projection && ternary_target) {
          ternary = ternarize(values.data(), cols, rows);
          have_ternary = true;
        }
      }
      std::vector<std::int64_t> ne = matrix ? std::vector<std::int64_t>{cols, rows} : std::vector<std::int64_t>{rows};
      if (target->cols == -1) ne = {cols, rows};
      GgmlType type = GgmlType::F32;
      if (target->projection) type = t;
      else if (matrix && target->cols != -1)   // embedding and output keep the checkpoint's float precision
        type = src->dtype == SafetensorsDtype::BF16 ? GgmlType::BF16
             : src->dtype == SafetensorsDtype::F16 ? GgmlType::F16 : GgmlType::F32;
      try {
        if (have_ternary && type_traits(type).ternary) {
          writer.add_tensor(target->name, ne, type, encode_ternary(type, ternary));
        } else {
          if (have_ternary && values.empty()) {
            values.resize(ternary.codes.size());
            for (std::size_t i = 0; i < values.size(); ++i) values[i] = ternary.codes[i] * ternary.scales[0];
          }
          writer.add_tensor(target->name, ne, type, encode(type, values.data(), ne[0], matrix ? rows : 1));
        }
      } catch (const FormatError& e) {
        throw FormatError(what + ": " + e.what());
      }
      written.insert(target->name);
    }
    ++progress.tensors_done;
    progress.bytes_done += src->bytes;
    progress.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    progress.tensor = src->name + (skipped.empty() ? "" : " (skipped: " + skipped + ")");
    if (options.progress) options.progress(progress);
  }
  for (const SafetensorsTensor* src : sources)
    if (src->name.size() > 13 && src->name.compare(src->name.size() - 13, 13, ".weight_scale") == 0 &&
        !used_scales.count(src->name))
      throw FormatError(src->file + ": '" + src->name + "' scales a weight that is not packed ternary (U8)");

  // Every tensor the architecture needs.
  std::vector<std::string> required = {"token_embd.weight", "output_norm.weight"};
  if (!m.hp.tied_output) required.push_back("output.weight");
  for (std::int64_t l = 0; l < m.hp.n_layer; ++l) {
    const std::string blk = "blk." + std::to_string(l) + ".";
    for (const std::string& p : projection_names()) required.push_back(blk + p + ".weight");
    required.push_back(blk + "attn_norm.weight");
    required.push_back(blk + "ffn_norm.weight");
    if (spec.sub_norms) {
      required.push_back(blk + "attn_sub_norm.weight");
      required.push_back(blk + "ffn_sub_norm.weight");
    }
  }
  for (const std::string& r : required)
    if (!written.count(r)) throw FormatError(dir.string() + ": the checkpoint has no tensor for '" + r + "'");
  if (m.hp.tied_output && written.count("output.weight"))
    throw FormatError((dir / "config.json").string() + ": tie_word_embeddings is true but lm_head.weight is present");
  writer.write(output);
}

}  // namespace bitrun
