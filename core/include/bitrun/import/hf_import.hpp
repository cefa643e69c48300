// `bitrun import`: a Hugging Face style checkpoint folder (config.json, model.safetensors or its shards,
// tokenizer.json, tokenizer_config.json) to one GGUF file bitrun serves, and bitnet.cpp reads for I2_S.
//
// Architectures: BitNetForCausalLM (bitnet-b1.58 with ReLU², bitnet with SiLU) and LlamaForCausalLM, and their
// block-diffusion variants (any architecture name with model_type bitnet or llama, plus mask_token_id and
// block_size / bd_size). Tensors: the Llama / BitNet layout (model.layers.N.self_attn.q_proj.weight, ...,
// attn_sub_norm, ffn_sub_norm, q_proj.lrc_U / lrc_V); projection weights as floats (F32, F16, BF16), ternarized
// with the loader's absmean rule, or as the official BitNet release packs them (U8, four 2-bit codes a byte along
// the output dimension, with a per-tensor weight_scale that divides). An unknown tensor, dtype or shape is an
// error that names it; nothing is dropped silently.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "bitrun/gguf/ggml_types.hpp"

namespace bitrun {

struct ImportProgress {
  std::size_t tensors_done = 0, tensors_total = 0;
  std::uint64_t bytes_done = 0, bytes_total = 0;   // source bytes
  double seconds = 0.0;                            // since the import started
  std::string tensor;                              // the source tensor just converted
};

struct ImportOptions {
  // Projection weights: i2_s, tq1_0 or tq2_0 for the ternary architectures, f16, bf16 or f32 for any.
  GgmlType weight_type = GgmlType::I2_S;
  std::optional<std::string> mask_token;   // text of the mask token (overrides config.json's mask_token_id)
  std::optional<std::string> arch;         // GGUF architecture to write (bitnet-b1.58, bitnet, llama)
  std::function<void(const ImportProgress&)> progress;
};

// Throws Error / FormatError naming the file, key or tensor at fault; `output` is written only on success.
void import_hf_checkpoint(const std::filesystem::path& dir, const std::filesystem::path& output,
                          const ImportOptions& options);

// The official BitNet packing (transformers' integrations/bitnet.py): a U8 tensor of packed_rows x cols holds
// 4 * packed_rows rows; bits 2i..2i+1 of byte (r, c) are the code of row i * packed_rows + r, value = code - 1.
// Returns the codes row-major (4 * packed_rows x cols); FormatError for the unused code 3.
std::vector<std::int8_t> unpack_bitnet_u8(const std::uint8_t* packed, std::int64_t packed_rows, std::int64_t cols);

}  // namespace bitrun
