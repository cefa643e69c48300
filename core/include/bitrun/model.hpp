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

#include "bitrun/architecture.hpp"
#include "bitrun/backend.hpp"

namespace bitrun {

class GgufFile;
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

// A projection weight: ternary (packed by the backend, int8 activations) or dense float.
struct Linear {
  std::int64_t rows = 0, cols = 0;                // out x in
  std::unique_ptr<PackedTernary> ternary;         // set for ternary projections
  std::vector<float> dense;                       // set for float projections (rows * cols)
  std::int64_t activation_block = 0;              // activation scale group: 0 = per token, 256 for TQ1_0/TQ2_0
                                                  // (llama.cpp's arithmetic for those files)
  float output_scale = 1.0f;                      // optional per-tensor `.scale` multiplier
  std::vector<float> lrc_u, lrc_v;                // optional low-rank correction: y += U (V^T x); U rows x r, V cols x r
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
};

class Model {
 public:
  // Loads and validates; `backend` packs the weights and must outlive the model.
  static std::unique_ptr<Model> load(const GgufFile& file, const Backend& backend, ModelLoadOptions options = {});
  static std::unique_ptr<Model> load(const std::filesystem::path& path, const Backend& backend,
                                     ModelLoadOptions options = {});
  ~Model();

  const ModelHparams& hparams() const { return hparams_; }
  const ArchitectureSpec& architecture() const { return *arch_; }
  const Backend& backend() const { return *backend_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const std::vector<LayerWeights>& layers() const { return layers_; }
  const std::vector<float>& token_embedding() const { return token_embd_; }   // n_vocab x n_embd
  const std::vector<float>& output_norm() const { return output_norm_; }
  // The output projection, n_vocab x n_embd dense float: the `output` tensor, or the token embedding when tied.
  const float* output_weight() const { return hparams_.tied_output ? token_embd_.data() : output_.dense.data(); }
  // Diffusion metadata (absent for plain AR models).
  std::optional<std::int32_t> mask_token() const { return mask_token_; }
  const std::string& name() const { return name_; }

 private:
  Model() = default;
  ModelHparams hparams_;
  const ArchitectureSpec* arch_ = nullptr;
  const Backend* backend_ = nullptr;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<float> token_embd_, output_norm_;
  Linear output_;
  std::vector<LayerWeights> layers_;
  std::optional<std::int32_t> mask_token_;
  std::string name_;
};

}  // namespace bitrun
