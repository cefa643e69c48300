// The ggml tensor types bitrun reads and writes: ids, block geometry, and codecs between their bytes and float32 or
// ternary codes. Layouts follow ggml (F16, BF16, Q8_0, Q6_K, TQ1_0, TQ2_0) and bitnet.cpp's x86 I2_S.
// Every codec checks sizes and throws FormatError instead of reading or writing out of bounds.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace bitrun {

// Ids as stored in GGUF. 36 is I2_S only in bitnet.cpp files; upstream ggml uses 36..39 for other types, so a GGUF
// reader must decide from the file (see GgufFile::open) before trusting it.
enum class GgmlType : std::uint32_t { F32 = 0, F16 = 1, Q8_0 = 8, Q6_K = 14, BF16 = 30, TQ1_0 = 34, TQ2_0 = 35, I2_S = 36 };

struct GgmlTypeTraits {
  const char* name;          // lower-case ggml name: "f32", "q6_k", "i2_s"
  std::int64_t block_elems;  // weights per block; row lengths must be a multiple of it
  std::int64_t block_bytes;  // bytes per block (I2_S adds a 32-byte per-tensor trailer, see tensor_bytes)
  bool ternary;              // weights are codes in {-1, 0, +1} times a scale
};

const GgmlTypeTraits& type_traits(GgmlType type);

// "f32", "f16", "bf16", "q8_0", "q6_k", "tq1_0", "tq2_0", "i2_s", case-insensitive.
std::optional<GgmlType> ggml_type_from_name(std::string_view name);

// The type with this on-disk id, if bitrun supports it (36 yields I2_S; see the note on GgmlType).
std::optional<GgmlType> ggml_type_from_id(std::uint32_t id);

// Bytes of a tensor of n_rows rows of row_len elements. I2_S: n/4 packed bytes plus a 32-byte trailer holding the
// float32 scale; other types: whole blocks. Throws FormatError when row_len is not positive or not a multiple of the
// block, n_rows is negative, or the size overflows.
std::uint64_t tensor_bytes(GgmlType type, std::int64_t row_len, std::int64_t n_rows);

// Decodes a 2-D tensor (n_rows rows of row_len) to float32. Throws FormatError when data_bytes is smaller than
// tensor_bytes() or (ternary types) the data holds an invalid code.
void dequantize(GgmlType type, const std::uint8_t* data, std::uint64_t data_bytes, std::int64_t row_len,
                std::int64_t n_rows, float* out);

// A ternary weight matrix: element i is codes[i] * scales[i / scale_block].
struct TernaryTensor {
  std::int64_t row_len = 0, n_rows = 0;
  std::vector<std::int8_t> codes;  // row-major, each -1, 0 or +1
  std::int64_t scale_block = 0;    // elements per scale; row_len * n_rows for a per-tensor scale
  std::vector<float> scales;
};

// Scales of a ternary-typed tensor, without its codes: element i has scales[i / scale_block].
struct TernaryScales {
  std::int64_t scale_block = 0;
  std::vector<float> scales;
};
TernaryScales ternary_scales(GgmlType type, const std::uint8_t* data, std::uint64_t data_bytes, std::int64_t row_len,
                             std::int64_t n_rows);

// Codes (-1, 0, +1) of rows [first_row, first_row + count) of a ternary-typed tensor into out (count * row_len),
// so a loader can stream a large matrix row by row. FormatError for short data, a bad range or an invalid code.
void decode_ternary_rows(GgmlType type, const std::uint8_t* data, std::uint64_t data_bytes, std::int64_t row_len,
                         std::int64_t n_rows, std::int64_t first_row, std::int64_t count, std::int8_t* out);

// Codes and scales of a ternary-typed tensor: I2_S gives one per-tensor scale, TQ1_0 / TQ2_0 one fp16 d per
// 256-element block. Throws FormatError for non-ternary types, short data or invalid codes.
TernaryTensor decode_ternary(GgmlType type, const std::uint8_t* data, std::uint64_t data_bytes, std::int64_t row_len,
                             std::int64_t n_rows);

// float32 -> bytes of `type`. Ternary types need values that are already ternary: per tensor (I2_S) or per
// 256-block (TQ*), every value is 0 or +-s for one s (within 0.1%); otherwise FormatError (use ternarize_absmean).
std::vector<std::uint8_t> encode(GgmlType type, const float* values, std::int64_t row_len, std::int64_t n_rows);

// BitNet b1.58 absmean quantization: s = mean|W| (at least 1e-5), codes = clamp(round(W / s), -1, 1), one scale.
TernaryTensor ternarize_absmean(const float* values, std::int64_t row_len, std::int64_t n_rows);

// Online quantization of float weights: values that are already ternary (every one 0 or +-s for one s, as
// converters write BitNet weights) keep exactly those codes and s; anything else is ternarize_absmean'd.
// (Absmean applied to already-ternary values would shrink s by the fraction of non-zeros.)
TernaryTensor ternarize(const float* values, std::int64_t row_len, std::int64_t n_rows);

// Packs a TernaryTensor. I2_S stores one scale, so all scales must be equal; TQ1_0 / TQ2_0 store one fp16 d per
// 256-element block, so every block must lie within one scale group. Throws FormatError otherwise.
std::vector<std::uint8_t> encode_ternary(GgmlType type, const TernaryTensor& tensor);

// IEEE half and bfloat16 conversions; float -> 16 bit rounds to nearest even, NaN stays NaN.
float fp16_to_f32(std::uint16_t h);
// n little-endian halves at src -> out (the bulk path of F16 tensors).
void fp16_to_f32_array(const std::uint8_t* src, std::int64_t n, float* out);
std::uint16_t f32_to_fp16(float f);
// n floats -> halves, the same results as f32_to_fp16 (the KV cache's write path; F16C where the CPU has it).
void f32_to_fp16_array(const float* src, std::int64_t n, std::uint16_t* out);
// The two passes that turn an F16 output projection into int8 rows, written so the compiler vectorizes them with
// the baseline ISA. fp16_absmax_bits: the largest magnitude among n halves as its 15 magnitude bits (0x7c00 or
// more: the row holds an inf or NaN). fp16_to_int8_scaled: q[k] = round_half_even(half[k] * inv), computed on the
// exact float value of each half; the halves must be finite and |half * inv| at most 127 plus rounding.
std::uint16_t fp16_absmax_bits(const std::uint8_t* src, std::int64_t n);
void fp16_to_int8_scaled(const std::uint8_t* src, std::int64_t n, float inv, std::int8_t* q);
float bf16_to_f32(std::uint16_t b);
std::uint16_t f32_to_bf16(float f);

}  // namespace bitrun
