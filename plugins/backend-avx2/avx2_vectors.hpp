// The 256-bit vector operations both AVX2 matmul traits share (packed_matmul.hpp): 8 rows per group, the loads,
// the 2-bit fields, and the float epilogue. In an anonymous namespace: the two translation units that include it
// are compiled with different ISA flags, and must not share one copy of these functions.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace bitrun::avx2 {
namespace {

struct Avx2Vectors {
  static constexpr std::int64_t kLanes = 8;
  using Int = __m256i;
  using Float = __m256;
  static Int zero() { return _mm256_setzero_si256(); }
  static Int load(const std::uint8_t* p) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(p)); }
  static Int field(Int chunk, int shift) {
    return _mm256_and_si256(_mm256_srli_epi16(chunk, shift), _mm256_set1_epi8(3));
  }
  // 4 activation bytes in every lane.
  static Int broadcast4(const std::int8_t* a) {
    std::int32_t a4;
    std::memcpy(&a4, a, 4);
    return _mm256_set1_epi32(a4);
  }
  static Float scaled(Int dot, std::int32_t offset, float scale) {
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(dot, _mm256_set1_epi32(offset))), _mm256_set1_ps(scale));
  }
  static Float add(Float a, Float b) { return _mm256_add_ps(a, b); }
  static Float mul(Float a, const float* v) { return _mm256_mul_ps(a, _mm256_loadu_ps(v)); }
  static void store(float* y, Float v, std::int64_t lanes) {
    if (lanes >= 8) {
      _mm256_storeu_ps(y, v);
    } else {
      const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      _mm256_maskstore_ps(y, _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(lanes)), lane), v);
    }
  }
};

}  // namespace
}  // namespace bitrun::avx2
