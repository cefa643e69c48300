// A loaded model: hyper-parameters, weights prepared for one backend, and the tokenizer. Loading validates the
// file against the architecture (required tensors, shapes, types) and fails with a FormatError naming the
// tensor or key; nothing is computed on a model that did not validate.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bitrun/model/architecture.hpp"
#include "bitrun/plugin/backend.hpp"
#include "bitrun/model/diffusion_metadata.hpp"
#include "bitrun/gguf/gguf.hpp"

namespace bitrun {

class Tokenizer;

struct ModelHparams {
  std::string architecture;
  std::int64_t n_vocab = 0, n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0;
  std::int64_t n_ctx_train = 0;
  std::int64_t rope_dims = 0;
  float rope_freq_base = 10000.0f;
  float rms_eps = 1e-5f;
  bool tied_output = false;
};

// Writes hp as the general.architecture and <arch>.* keys Model::load() reads (shapes, context, RoPE, norm epsilon,
// vocabulary size): the one list of them for the writers of model files (synth, import).
void set_hparams_metadata(GgufWriter& out, const ModelHparams& hp);

// A projection weight: ternary or int8 (packed by the backend, int8 activations), or dense float.
struct Linear {
  std::int64_t rows = 0, cols = 0;                // out x in
  std::unique_ptr<PackedMatrix> ternary;          // set for ternary projections
  std::unique_ptr<PackedMatrix> int8;             // set for int8 matrices (the output projection of BitNet models)
  std::unique_ptr<PackedMatrix> q6_k;             // set for an output projection kept as the file's Q6_K blocks
  std::vector<float> dense;                       // set for float projections (rows * cols)
  std::int64_t activation_block = 0;              // activation scale group: 0 = per token, 256 for TQ1_0/TQ2_0
                                                  // (llama.cpp's arithmetic for those files)
  float output_scale = 1.0f;                      // optional per-tensor `.scale` multiplier
  // Optional low-rank correction y += U (V^T x): U is rows x rank; V^T is kept as rank x cols (transposed at load)
  // so both steps are plain row-major matmuls.
  std::vector<float> lrc_u, lrc_vt;
  std::int64_t lrc_rank = 0;
};

struct LayerWeights {
  std::vector<float> attn_norm, ffn_norm, attn_sub_norm, ffn_sub_norm;
  Linear wq, wk, wv, wo, w_gate, w_up, w_down;
};

struct ModelLoadOptions {
  // Ternarize float projection weights of ternary architectures at load (see ternarize(): exact ternary values
  // are kept, others get per-tensor absmean). When false they are used as dense float matrices (useful to
  // compare with engines that run F16 weights unquantized).
  bool ternarize_float_weights = true;
  // Ternary architectures: quantize the output projection (tied embedding or `output`) to int8 per row, so a
  // decoded token streams 1 byte per output weight instead of 2-4; one stored as Q6_K is kept as it is (6.56 bits,
  // see Backend::pack_q6_k). Float architectures keep it in float.
  bool int8_output = true;
};

class Model {
 public:
  // Loads and validates; `backend` packs the weights and must outlive the model.
  // The model keeps the file mapped: embedding rows are decoded from it on use.
  static std::unique_ptr<Model> load(GgufFile file, const Backend& backend, ModelLoadOptions options = {});
  static std::unique_ptr<Model> load(const std::filesystem::path& path, const Backend& backend,
                                     ModelLoadOptions options = {});
  ~Model();

  const ModelHparams& hparams() const { return hparams_; }
  const ArchitectureSpec& architecture() const { return *arch_; }
  const Backend& backend() const { return *backend_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const std::vector<LayerWeights>& layers() const { return layers_; }
  // Writes the n_embd floats of `token`'s embedding (decoded from the file's type) to out.
  void embed(std::int32_t token, float* out) const;
  const std::vector<float>& output_norm() const { return output_norm_; }
  // The output projection, n_vocab x n_embd: the `output` tensor, or the token embedding when tied.
  const Linear& output() const { return output_; }
  // Diffusion metadata (absent for plain AR models): tokenizer.ggml.mask_token_id, and diffusion.block_size,
  // diffusion.attention (else <arch>.attention.causal), diffusion.shift_logits.
  std::optional<std::int32_t> mask_token() const { return mask_token_; }
  const DiffusionMetadata& diffusion() const { return diffusion_; }
  const std::string& name() const { return name_; }

 private:
  explicit Model(GgufFile file);
  ModelHparams hparams_;
  const ArchitectureSpec* arch_ = nullptr;
  const Backend* backend_ = nullptr;
  std::unique_ptr<Tokenizer> tokenizer_;
  GgufFile file_;
  const GgufTensorInfo* token_embd_ = nullptr;   // in file_
  std::uint64_t embd_row_bytes_ = 0;
  std::vector<float> output_norm_;
  Linear output_;
  std::vector<LayerWeights> layers_;
  std::optional<std::int32_t> mask_token_;
  DiffusionMetadata diffusion_;
  std::string name_;
};

}  // namespace bitrun
