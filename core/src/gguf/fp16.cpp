// IEEE binary16 and bfloat16 <-> float32, bit-exact and portable (no F16C), rounding to nearest even; the bulk
// float -> half path uses F16C when the CPU has it (the same results: F16C rounds to nearest even too).
#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <vector>

#include "bitrun/gguf/ggml_types.hpp"

namespace bitrun {
namespace {

// Rounds `value >> shift` to nearest, ties to even.
std::uint32_t shift_round_even(std::uint32_t value, int shift) {
  const std::uint32_t kept = value >> shift;
  const std::uint32_t rest = value & ((std::uint32_t{1} << shift) - 1);
  const std::uint32_t half = std::uint32_t{1} << (shift - 1);
  return kept + ((rest > half || (rest == half && (kept & 1))) ? 1 : 0);
}


float fp16_to_f32_compute(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1f;
  std::uint32_t mant = h & 0x3ff;
  if (exp == 0x1f) return std::bit_cast<float>(sign | 0x7f800000 | (mant << 13));   // inf / NaN (payload kept)
  if (exp != 0) return std::bit_cast<float>(sign | ((exp + 112) << 23) | (mant << 13));
  if (mant == 0) return std::bit_cast<float>(sign);
  // Subnormal half: normalize the mantissa into a float32 normal number.
  int e = 113;
  while (!(mant & 0x400)) {
    mant <<= 1;
    --e;
  }
  return std::bit_cast<float>(sign | (static_cast<std::uint32_t>(e) << 23) | ((mant & 0x3ff) << 13));
}

// A 256 KiB table: embedding rows and weight loading decode hundreds of millions of halves.
const float* fp16_table() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (std::uint32_t i = 0; i < 65536; ++i) t[i] = fp16_to_f32_compute(static_cast<std::uint16_t>(i));
    return t;
  }();
  return table.data();
}

}  // namespace

float fp16_to_f32(std::uint16_t h) { return fp16_table()[h]; }

void fp16_to_f32_array(const std::uint8_t* src, std::int64_t n, float* out) {
  const float* table = fp16_table();
  for (std::int64_t i = 0; i < n; ++i) {
    std::uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    out[i] = table[h];
  }
}

std::uint16_t fp16_absmax_bits(const std::uint8_t* src, std::int64_t n) {
  // Magnitudes of halves order like their low 15 bits; as int16 they are non-negative, so a signed max works
  // (SSE2 has one for int16, not for uint16).
  std::int16_t max_bits = 0;
  for (std::int64_t k = 0; k < n; ++k) {
    std::uint16_t h;
    std::memcpy(&h, src + 2 * k, 2);
    max_bits = std::max(max_bits, static_cast<std::int16_t>(h & 0x7fff));
  }
  return static_cast<std::uint16_t>(max_bits);
}

void fp16_to_int8_scaled(const std::uint8_t* src, std::int64_t n, float inv, std::int8_t* q) {
  // A finite half's bits shifted into a float's place read as the value times 2^-112 (subnormal halves land on
  // float subnormals), so one exact multiply by 2^112 decodes it: no table lookup, which would not vectorize.
  constexpr float kHalfBias = 0x1p112f;
  // Round half to even by the 1.5 * 2^23 trick; |value * inv| rounds into [-127, 127] for a finite row.
  constexpr float kMagic = 12582912.0f;
  for (std::int64_t k = 0; k < n; ++k) {
    std::uint16_t h;
    std::memcpy(&h, src + 2 * k, 2);
    const std::uint32_t bits = static_cast<std::uint32_t>(h & 0x8000) << 16 | static_cast<std::uint32_t>(h & 0x7fff) << 13;
    const float value = std::bit_cast<float>(bits) * kHalfBias;
    q[k] = static_cast<std::int8_t>(static_cast<int>((value * inv + kMagic) - kMagic));
  }
}

std::uint16_t f32_to_fp16(float f) {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(f);
  const auto sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000);
  const std::uint32_t abs = bits & 0x7fffffff;
  if (abs > 0x7f800000) return sign | 0x7e00 | static_cast<std::uint16_t>((abs >> 13) & 0x3ff);   // quiet NaN
  const int exp = static_cast<int>(abs >> 23) - 127;
  const std::uint32_t mant = abs & 0x7fffff;
  if (exp > 15) return sign | 0x7c00;   // too large (or inf)
  if (exp >= -14) {
    // Normal half; a carry out of the mantissa correctly bumps the exponent (up to inf).
    const std::uint32_t h = (static_cast<std::uint32_t>(exp + 15) << 10) | (mant >> 13);
    const std::uint32_t rest = mant & 0x1fff;
    return sign | static_cast<std::uint16_t>(h + ((rest > 0x1000 || (rest == 0x1000 && (h & 1))) ? 1 : 0));
  }
  if (exp >= -25) {
    // Subnormal half: units of 2^-24; a carry into 0x400 yields the smallest normal, as it should.
    return sign | static_cast<std::uint16_t>(shift_round_even(mant | 0x800000, -1 - exp));
  }
  return sign;   // rounds to zero
}

namespace {

__attribute__((target("avx,f16c"))) void f32_to_fp16_array_f16c(const float* src, std::int64_t n, std::uint16_t* out) {
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; i < n; ++i) out[i] = f32_to_fp16(src[i]);
}

// F16C and AVX usable: CPUID leaf 1 (ECX bits 29 and 28) and the OS saving YMM state (XGETBV bits 1-2). Written
// out because clang's __builtin_cpu_supports does not know "f16c".
bool has_f16c() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  const bool cpu = (c & (1u << 29)) && (c & (1u << 28)) && (c & (1u << 27));   // F16C, AVX, OSXSAVE
  if (!cpu) return false;
  unsigned lo, hi;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (lo & 6u) == 6u;
}

}  // namespace

void f32_to_fp16_array(const float* src, std::int64_t n, std::uint16_t* out) {
  static const bool f16c = has_f16c();
  if (f16c) return f32_to_fp16_array_f16c(src, n, out);
  for (std::int64_t i = 0; i < n; ++i) out[i] = f32_to_fp16(src[i]);
}

float bf16_to_f32(std::uint16_t b) { return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16); }

std::uint16_t f32_to_bf16(float f) {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(f);
  if ((bits & 0x7fffffff) > 0x7f800000) return static_cast<std::uint16_t>((bits >> 16) | 0x40);   // quiet NaN
  return static_cast<std::uint16_t>(shift_round_even(bits, 16));
}

}  // namespace bitrun
