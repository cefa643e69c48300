// The AVX-512 backend's element-wise kernels (elementwise_avx512.cpp), with Backend::gated_activation's and
// Backend::rope's contracts plus the threads to use.
#pragma once

#include <cstdint>

namespace bitrun::avx512 {

// w[i] = e^(w[i] - shift) for i < n; returns their sum (the attention kernel's ExpShifted).
float exp_shifted(float* w, std::int64_t n, float shift);
void rms_norm(const float* x, const float* weight, std::int64_t rows, std::int64_t cols, float eps, float* y);
void gated_activation(int threads, float* gate, const float* up, std::int64_t n, bool relu_squared);
void rope(int threads, float* x, std::int64_t rows, std::int64_t n_heads, std::int64_t head_dim,
          std::int64_t rope_dims, const std::int32_t* positions, float freq_base, bool neox);

}  // namespace bitrun::avx512
