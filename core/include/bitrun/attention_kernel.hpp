// Attention over the KV cache written once for the SIMD backends: each includes this in its ISA translation
// unit, so the same loops compile to AVX2 or AVX-512 there, with its own row conversions for the cache's storage
// (HalfToFloat for F16, Int8ToFloat for int8; see KvRowReader). Work is split over (query row, KV head) pairs across the backend's threads; the query heads sharing
// a KV head (GQA) are processed together, so each cached K and V row is converted once for all of them. Dot
// products and the weighted sum use `Lanes` independent partial sums, which the compiler turns into vector
// registers. Same contract as Backend::attention; results differ from the scalar reference only by float
// summation order.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "bitrun/kv_layer_view.hpp"

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

template <int Lanes, auto HalfToFloat, auto Int8ToFloat>
void attention_kernel(int threads, const float* q, std::int64_t rows, const KvLayerView& kv,
                      const std::int32_t* limit, std::int64_t n_heads, std::int64_t n_kv_heads,
                      std::int64_t head_dim, float* out) {
  validate_kv_view(kv, n_heads, n_kv_heads, head_dim);
  const KvRowReader<HalfToFloat, Int8ToFloat> cached(kv, n_kv_heads, head_dim);
  const std::int64_t group = n_heads / n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const std::int64_t tasks = rows * n_kv_heads;
#pragma omp parallel num_threads(threads) if (tasks > 1)
  {
    std::vector<float> scores, kv_row(static_cast<std::size_t>(head_dim)), inv(static_cast<std::size_t>(group));
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t task = 0; task < tasks; ++task) {
      const std::int64_t r = task / n_kv_heads, kvh = task % n_kv_heads, n_pos = limit[r];
      const float* q0 = q + (r * n_heads + kvh * group) * head_dim;   // the group's query heads, consecutive
      float* out0 = out + (r * n_heads + kvh * group) * head_dim;
      scores.resize(static_cast<std::size_t>(group * n_pos));
      for (std::int64_t p = 0; p < n_pos; ++p) {
        cached.key(p, kvh, kv_row.data());
        for (std::int64_t g = 0; g < group; ++g)
          scores[static_cast<std::size_t>(g * n_pos + p)] = dot_lanes<Lanes>(q0 + g * head_dim, kv_row.data(), head_dim) * scale;
      }
      for (std::int64_t g = 0; g < group; ++g) {
        float* s = scores.data() + g * n_pos;
        const float max_score = n_pos > 0 ? *std::max_element(s, s + n_pos) : 0.0f;
        double denom = 0.0;
        for (std::int64_t p = 0; p < n_pos; ++p) denom += s[p] = std::exp(s[p] - max_score);
        inv[static_cast<std::size_t>(g)] = static_cast<float>(1.0 / denom);
      }
      std::fill(out0, out0 + group * head_dim, 0.0f);
      for (std::int64_t p = 0; p < n_pos; ++p) {
        cached.value(p, kvh, kv_row.data());
        for (std::int64_t g = 0; g < group; ++g) {
          const float w = scores[static_cast<std::size_t>(g * n_pos + p)] * inv[static_cast<std::size_t>(g)];
          float* o = out0 + g * head_dim;
          for (std::int64_t d = 0; d < head_dim; ++d) o[d] += w * kv_row[static_cast<std::size_t>(d)];
        }
      }
    }
  }
}

}  // namespace bitrun
