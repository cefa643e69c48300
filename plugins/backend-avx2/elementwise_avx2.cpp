// The element-wise kernels of the AVX2 backend: elementwise_kernel.hpp's loops on 8-float registers.
#include <immintrin.h>

#include "backend_common/elementwise_kernel.hpp"
#include "elementwise_avx2.hpp"

namespace bitrun::avx2 {
namespace {

struct Lanes8 {
  using F = __m256;
  static constexpr int kLanes = 8;
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static F set1(float v) { return _mm256_set1_ps(v); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F div(F a, F b) { return _mm256_div_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F max(F a, F b) { return _mm256_max_ps(a, b); }
  static F min(F a, F b) { return _mm256_min_ps(a, b); }
  static F round(F v) { return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static F floor(F v) { return _mm256_floor_ps(v); }
  static F pow2(F n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
  }
  static F swap_pairs(F v) { return _mm256_permute_ps(v, 0xB1); }
  static float hsum(F v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

}  // namespace

float exp_shifted(float* w, std::int64_t n, float shift) { return exp_shifted_kernel<Lanes8>(w, n, shift); }

void rms_norm(const float* x, const float* weight, std::int64_t rows, std::int64_t cols, float eps, float* y) {
  rms_norm_kernel<Lanes8>(x, weight, rows, cols, eps, y);
}

void gated_activation(int threads, float* gate, const float* up, std::int64_t n, bool relu_squared) {
  gated_activation_kernel<Lanes8>(threads, gate, up, n, relu_squared);
}

void rope(int threads, float* x, std::int64_t rows, std::int64_t n_heads, std::int64_t head_dim,
          std::int64_t rope_dims, const std::int32_t* positions, float freq_base, bool neox) {
  rope_kernel<Lanes8>(threads, x, rows, n_heads, head_dim, rope_dims, positions, freq_base, neox);
}

}  // namespace bitrun::avx2
