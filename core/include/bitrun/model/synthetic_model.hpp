// Synthetic models: real shapes, random weights, so benchmarks need no download. The weights are random ternary
// values (speed does not depend on them); the vocabulary is a SentencePiece-style list of control, byte and filler
// tokens, so any text tokenizes (by byte fallback) and every id decodes. Its last token is the control token
// `|<MASK>|`, and the file states the Fast-dLLM v2 diffusion contract for it, so the diffusion decoder can be
// benchmarked on the same model.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "bitrun/gguf/ggml_types.hpp"

namespace bitrun {

struct SyntheticSpec {
  std::string preset;             // name it was made from
  std::string architecture = "bitnet-b1.58";
  std::int64_t n_embd = 0, n_ff = 0, n_layer = 0, n_head = 0, n_head_kv = 0, n_vocab = 0, n_ctx = 4096;
  float rope_freq_base = 500000.0f;
  GgmlType weight_type = GgmlType::I2_S;       // projections
  GgmlType embedding_type = GgmlType::F16;     // tied token embedding / output
  // Write tokenizer.ggml.mask_token_id and diffusion.block_size / attention / shift_logits (block-causal, 32).
  bool diffusion_metadata = true;
};

// Presets: "bitnet-2b-4t" (BitNet-b1.58-2B-4T shapes: hidden 2560, ffn 6912, 30 layers, 20/5 heads, vocab 128256,
// ReLU^2, tied F16 embedding, I2_S), "bitnet-700m", "bitnet-tiny". Throws Error for an unknown name.
SyntheticSpec synthetic_preset(const std::string& name);
std::vector<std::string> synthetic_preset_names();

// Writes the model; `progress(done, total)` is called per tensor. Same spec and seed give the same file.
void write_synthetic_model(const SyntheticSpec& spec, const std::filesystem::path& path, std::uint64_t seed,
                           const std::function<void(std::size_t, std::size_t)>& progress = {});

}  // namespace bitrun
