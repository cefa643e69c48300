// Internal block codecs behind the dispatchers in ggml_types.cpp. Callers have checked every size: the functions
// read and write exactly n_elems elements' worth of whole blocks.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

#include "bitrun/gguf/ggml_types.hpp"

namespace bitrun::detail {

static_assert(std::endian::native == std::endian::little, "GGUF data is little-endian; bitrun assumes a little-endian host");

template <typename T>
T load_le(const std::uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename T>
void store_le(std::uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

// F32, F16, BF16, Q8_0, Q6_K.
void decode_float_type(GgmlType type, const std::uint8_t* src, std::int64_t n_elems, float* out);
void encode_float_type(GgmlType type, const float* src, std::int64_t n_elems, std::uint8_t* out);

// One Q6_K block (210 bytes) as its parts: the 256 unsigned 6-bit values (weight = d * scales[k / 16] * (q[k] - 32)),
// the 16 sub-block scales and the fp16 super-scale d as float.
void unpack_q6_k_block(const std::uint8_t* block, std::uint8_t q[256], std::int8_t scales[16], float& d);
// FormatError naming the row and block when a Q6_K block's scale d is inf or NaN (what a packer cannot multiply by;
// the 6-bit values themselves cannot be invalid).
void check_q6_k_scale(float d, std::int64_t row, std::int64_t block);

// True if a 2-bit field of the `bytes` bytes at p holds 0b11, the code neither I2_S nor TQ2_0 uses (one pass over
// whole bytes; a caller that must name the position looks for it afterwards).
bool has_code_3(const std::uint8_t* p, std::int64_t bytes);

// I2_S's packed codes for n (a multiple of 128) codes in -1..1: block b of 128 weights is 32 bytes, byte m holding
// weights m, m+32, m+64, m+96 as code + 1 from the high bits down. n / 4 bytes at `out`; no scale.
void encode_i2s_codes(const std::int8_t* codes, std::int64_t n, std::uint8_t* out);

// The codes and scales of values that are already ternary, grouped as `type` stores scales (whole tensor for I2_S,
// 256-blocks for TQ*). Throws FormatError naming the first value that is not 0 or +-s.
TernaryTensor ternary_from_exact(GgmlType type, const float* values, std::int64_t row_len, std::int64_t n_rows);

}  // namespace bitrun::detail
