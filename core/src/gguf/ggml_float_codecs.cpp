// Block codecs of the non-ternary types: F32, F16, BF16, Q8_0 and Q6_K. Decoders reproduce ggml's dequantization
// exactly (same float operations in the same order); encoders produce valid blocks with small error.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "bitrun/base/error.hpp"
#include "gguf/ggml_codecs.hpp"

namespace bitrun::detail {
namespace {

constexpr std::int64_t kQ8Block = 32, kQ8Bytes = 34;
constexpr std::int64_t kQ6Block = 256, kQ6Bytes = 210;
constexpr std::int64_t kQ6QlOff = 0, kQ6QhOff = 128, kQ6ScOff = 192, kQ6DOff = 208;

// Q8_0 and Q6_K cannot represent inf / NaN; saying where is better than writing a block that decodes to garbage.
void check_finite(GgmlType type, const float* src, std::int64_t n_elems) {
  for (std::int64_t i = 0; i < n_elems; ++i)
    if (!std::isfinite(src[i]))
      throw FormatError(std::string(type_traits(type).name) + " cannot encode the non-finite value at element " +
                        std::to_string(i));
}

// Checks an fp16 block scale: overflow to inf would make the whole block decode to inf / NaN.
std::uint16_t checked_scale(GgmlType type, std::uint16_t h, std::int64_t block) {
  if ((h & 0x7c00) == 0x7c00)
    throw FormatError(std::string(type_traits(type).name) + " block " + std::to_string(block) +
                      ": values too large for an fp16 block scale");
  return h;
}

void decode_q8_0(const std::uint8_t* src, std::int64_t n_elems, float* out) {
  for (std::int64_t b = 0; b < n_elems / kQ8Block; ++b) {
    const std::uint8_t* blk = src + b * kQ8Bytes;
    const float d = fp16_to_f32(load_le<std::uint16_t>(blk));
    for (std::int64_t j = 0; j < kQ8Block; ++j)
      out[b * kQ8Block + j] = static_cast<float>(static_cast<std::int8_t>(blk[2 + j])) * d;
  }
}

// Same arithmetic as ggml's reference quantizer (d = absmax / 127 in float, q = round-half-away(x * (1 / d))), so the
// bytes match ggml's for finite input.
void encode_q8_0(const float* src, std::int64_t n_elems, std::uint8_t* out) {
  check_finite(GgmlType::Q8_0, src, n_elems);
  for (std::int64_t b = 0; b < n_elems / kQ8Block; ++b) {
    const float* x = src + b * kQ8Block;
    std::uint8_t* blk = out + b * kQ8Bytes;
    float amax = 0.0f;
    for (std::int64_t j = 0; j < kQ8Block; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_le<std::uint16_t>(blk, checked_scale(GgmlType::Q8_0, f32_to_fp16(d), b));
    for (std::int64_t j = 0; j < kQ8Block; ++j) {
      const float q = std::clamp(std::round(x[j] * id), -127.0f, 127.0f);
      blk[2 + j] = static_cast<std::uint8_t>(static_cast<std::int8_t>(q));
    }
  }
}

// ggml's dequantize_row_q6_K: value = d * scale * (q - 32), evaluated in that order (bits: unpack_q6_k_block).
void decode_q6_k(const std::uint8_t* src, std::int64_t n_elems, float* out) {
  std::uint8_t q[kQ6Block];
  std::int8_t scales[16];
  for (std::int64_t b = 0; b < n_elems / kQ6Block; ++b) {
    float d;
    unpack_q6_k_block(src + b * kQ6Bytes, q, scales, d);
    float* y = out + b * kQ6Block;
    for (int k = 0; k < kQ6Block; ++k)
      y[k] = d * static_cast<float>(scales[k / 16]) * static_cast<float>(static_cast<int>(q[k]) - 32);
  }
}

// Not ggml's quantize_row_q6_K (which searches each sub-block's scale iteratively), so the bytes differ from
// ggml's, but the blocks are valid and the error is at most half a step of each 16-weight sub-block: the sub-block
// step is absmax/31 rounded UP to a multiple of the fp16 super-scale d, so no value ever needs clamping.
void encode_q6_k(const float* src, std::int64_t n_elems, std::uint8_t* out) {
  check_finite(GgmlType::Q6_K, src, n_elems);
  for (std::int64_t b = 0; b < n_elems / kQ6Block; ++b) {
    const float* x = src + b * kQ6Block;
    std::uint8_t* blk = out + b * kQ6Bytes;
    std::memset(blk, 0, kQ6Bytes);

    float sub_step[16];
    float max_step = 0.0f;
    for (int s = 0; s < 16; ++s) {
      float amax = 0.0f;
      for (int j = 0; j < 16; ++j) amax = std::max(amax, std::fabs(x[16 * s + j]));
      sub_step[s] = amax / 31.0f;
      max_step = std::max(max_step, sub_step[s]);
    }
    // d >= max_step / 127 after fp16 rounding, so every sub-block scale fits in 1..127.
    const float d_exact = max_step / 127.0f;
    std::uint16_t dh = f32_to_fp16(d_exact);
    if (fp16_to_f32(dh) < d_exact) ++dh;   // next fp16 up (d_exact >= 0)
    dh = checked_scale(GgmlType::Q6_K, dh, b);
    const float d = fp16_to_f32(dh);
    store_le<std::uint16_t>(blk + kQ6DOff, dh);

    int L[256];
    for (int s = 0; s < 16; ++s) {
      const int sc = d > 0.0f ? std::clamp(static_cast<int>(std::ceil(sub_step[s] / d)), 0, 127) : 0;
      blk[kQ6ScOff + s] = static_cast<std::uint8_t>(sc);
      const float step = d * static_cast<float>(sc);   // what the decoder multiplies by
      for (int j = 0; j < 16; ++j) {
        const int e = 16 * s + j;
        const int q = step > 0.0f ? static_cast<int>(std::clamp(std::round(x[e] / step), -32.0f, 31.0f)) : 0;
        L[e] = q + 32;
      }
    }
    for (int half = 0; half < 2; ++half) {
      std::uint8_t* ql = blk + kQ6QlOff + 64 * half;
      std::uint8_t* qh = blk + kQ6QhOff + 32 * half;
      const int* v = L + 128 * half;
      for (int l = 0; l < 32; ++l) {
        ql[l] = static_cast<std::uint8_t>((v[l] & 0xf) | ((v[l + 64] & 0xf) << 4));
        ql[l + 32] = static_cast<std::uint8_t>((v[l + 32] & 0xf) | ((v[l + 96] & 0xf) << 4));
        qh[l] = static_cast<std::uint8_t>((v[l] >> 4) | ((v[l + 32] >> 4) << 2) | ((v[l + 64] >> 4) << 4) |
                                          ((v[l + 96] >> 4) << 6));
      }
    }
  }
}

[[noreturn]] void not_a_float_type(GgmlType type) {
  throw FormatError(std::string("ggml type ") + type_traits(type).name + " is not a float or Q8_0/Q6_K type");
}

}   // namespace

void check_q6_k_scale(float d, std::int64_t row, std::int64_t block) {
  if (!std::isfinite(d))
    throw FormatError("Q6_K row " + std::to_string(row) + " block " + std::to_string(block) + " has scale d = " +
                      std::to_string(d));
}

void unpack_q6_k_block(const std::uint8_t* block, std::uint8_t q[256], std::int8_t scales[16], float& d) {
  d = fp16_to_f32(load_le<std::uint16_t>(block + kQ6DOff));
  std::memcpy(scales, block + kQ6ScOff, 16);
  // Each half of 128 values: ql byte l holds values l (low nibble) and l + 64 (high), byte l + 32 values l + 32 and
  // l + 96; qh byte l holds the top 2 bits of values l, l + 32, l + 64, l + 96 from the low bits up.
  for (int half = 0; half < 2; ++half) {
    const std::uint8_t* ql = block + kQ6QlOff + 64 * half;
    const std::uint8_t* qh = block + kQ6QhOff + 32 * half;
    std::uint8_t* out = q + 128 * half;
    for (int l = 0; l < 32; ++l) {
      out[l] = static_cast<std::uint8_t>((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4));
      out[l + 32] = static_cast<std::uint8_t>((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4));
      out[l + 64] = static_cast<std::uint8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
      out[l + 96] = static_cast<std::uint8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
    }
  }
}

void decode_float_type(GgmlType type, const std::uint8_t* src, std::int64_t n_elems, float* out) {
  switch (type) {
    case GgmlType::F32:
      if (n_elems > 0) std::memcpy(out, src, static_cast<std::size_t>(n_elems) * sizeof(float));
      return;
    case GgmlType::F16:
      fp16_to_f32_array(src, n_elems, out);
      return;
    case GgmlType::BF16:
      for (std::int64_t i = 0; i < n_elems; ++i) out[i] = bf16_to_f32(load_le<std::uint16_t>(src + 2 * i));
      return;
    case GgmlType::Q8_0: decode_q8_0(src, n_elems, out); return;
    case GgmlType::Q6_K: decode_q6_k(src, n_elems, out); return;
    default: not_a_float_type(type);
  }
}

void encode_float_type(GgmlType type, const float* src, std::int64_t n_elems, std::uint8_t* out) {
  switch (type) {
    case GgmlType::F32:
      if (n_elems > 0) std::memcpy(out, src, static_cast<std::size_t>(n_elems) * sizeof(float));
      return;
    case GgmlType::F16:
      for (std::int64_t i = 0; i < n_elems; ++i) store_le<std::uint16_t>(out + 2 * i, f32_to_fp16(src[i]));
      return;
    case GgmlType::BF16:
      for (std::int64_t i = 0; i < n_elems; ++i) store_le<std::uint16_t>(out + 2 * i, f32_to_bf16(src[i]));
      return;
    case GgmlType::Q8_0: encode_q8_0(src, n_elems, out); return;
    case GgmlType::Q6_K: encode_q6_k(src, n_elems, out); return;
    default: not_a_float_type(type);
  }
}

}   // namespace bitrun::detail
