// Attention over the KV cache written once for the SIMD backends: each includes this in its ISA translation unit,
// so the same loops compile to AVX2 or AVX-512 there. Work is split over (query row, head) pairs across the
// backend's threads; dot products and the weighted sum use `Lanes` independent partial sums, which the compiler
// turns into vector registers. Same contract as Backend::attention; results differ from the scalar reference
// only by float summation order.
#pragma once

#include <omp.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace bitrun {

template <int Lanes>
inline float dot_lanes(const float* a, const float* b, std::int64_t n) {
  float acc[Lanes] = {};
  std::int64_t i = 0;
  for (; i + Lanes <= n; i += Lanes)
    for (int j = 0; j < Lanes; ++j) acc[j] += a[i + j] * b[i + j];
  float sum = 0.0f;
  for (int j = 0; j < Lanes; ++j) sum += acc[j];
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

template <int Lanes>
void attention_kernel(int threads, const float* q, std::int64_t rows, const float* k_cache, const float* v_cache,
                      const std::int32_t* limit, std::int64_t n_heads, std::int64_t n_kv_heads, std::int64_t head_dim,
                      float* out) {
  const std::int64_t group = n_heads / n_kv_heads, kv_stride = n_kv_heads * head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const std::int64_t tasks = rows * n_heads;
#pragma omp parallel num_threads(threads) if (tasks > 1)
  {
    std::vector<float> scores;
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t task = 0; task < tasks; ++task) {
      const std::int64_t r = task / n_heads, h = task % n_heads, n_pos = limit[r];
      const float* qh = q + (r * n_heads + h) * head_dim;
      const float* kh = k_cache + (h / group) * head_dim;
      const float* vh = v_cache + (h / group) * head_dim;
      scores.resize(static_cast<std::size_t>(n_pos));
      float max_score = -INFINITY;
      for (std::int64_t p = 0; p < n_pos; ++p) {
        scores[static_cast<std::size_t>(p)] = dot_lanes<Lanes>(qh, kh + p * kv_stride, head_dim) * scale;
        max_score = std::max(max_score, scores[static_cast<std::size_t>(p)]);
      }
      double denom = 0.0;
      for (std::int64_t p = 0; p < n_pos; ++p)
        denom += scores[static_cast<std::size_t>(p)] = std::exp(scores[static_cast<std::size_t>(p)] - max_score);
      const float inv = static_cast<float>(1.0 / denom);
      float* oh = out + (r * n_heads + h) * head_dim;
      for (std::int64_t d = 0; d < head_dim; ++d) oh[d] = 0.0f;
      for (std::int64_t p = 0; p < n_pos; ++p) {
        const float w = scores[static_cast<std::size_t>(p)] * inv;
        const float* vp = vh + p * kv_stride;
        for (std::int64_t d = 0; d < head_dim; ++d) oh[d] += w * vp[d];
      }
    }
  }
}

}  // namespace bitrun
