// The element-wise kernels of the AVX-512 backend: elementwise_kernel.hpp's loops on 16-float registers.
#include <immintrin.h>

#include "backend_common/elementwise_kernel.hpp"
#include "elementwise_avx512.hpp"

namespace bitrun::avx512 {
namespace {

struct Lanes16 {
  using F = __m512;
  static constexpr int kLanes = 16;
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static F set1(float v) { return _mm512_set1_ps(v); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F div(F a, F b) { return _mm512_div_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F max(F a, F b) { return _mm512_max_ps(a, b); }
  static F min(F a, F b) { return _mm512_min_ps(a, b); }
  static F round(F v) { return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static F floor(F v) { return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
  static F pow2(F n) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
  }
  static F swap_pairs(F v) { return _mm512_permute_ps(v, 0xB1); }
  static float hsum(F v) { return _mm512_reduce_add_ps(v); }
};

}  // namespace

float exp_shifted(float* w, std::int64_t n, float shift) { return exp_shifted_kernel<Lanes16>(w, n, shift); }

void rms_norm(const float* x, const float* weight, std::int64_t rows, std::int64_t cols, float eps, float* y) {
  rms_norm_kernel<Lanes16>(x, weight, rows, cols, eps, y);
}

void gated_activation(int threads, float* gate, const float* up, std::int64_t n, bool relu_squared) {
  gated_activation_kernel<Lanes16>(threads, gate, up, n, relu_squared);
}

void rope(int threads, float* x, std::int64_t rows, std::int64_t n_heads, std::int64_t head_dim,
          std::int64_t rope_dims, const std::int32_t* positions, float freq_base, bool neox) {
  rope_kernel<Lanes16>(threads, x, rows, n_heads, head_dim, rope_dims, positions, freq_base, neox);
}

}  // namespace bitrun::avx512
