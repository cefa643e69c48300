// The AVX2 backend's ternary matmul on CPUs with AVX-VNNI (VEX-encoded vpdpbusd: Alder Lake and later, Zen 4 and
// later), compiled with -mavxvnni in its own translation unit and called only when the CPU has the feature. One
// vpdpbusd replaces vpmaddubsw + vpmaddwd + vpaddd. For every token count since small tiles split their
// accumulators (packed_matmul.hpp) and take two row groups: a 2560-wide matrix in L2, one thread, against the plain
// path: 1 token 100 -> 147 GMAC/s, 2 tokens 126 -> 181, 4 tokens 146 -> 188. (int8 matrices stay on the plain path.)
#pragma once

#include <cstdint>

#include "backend_common/packed_matmul.hpp"

namespace bitrun::avx2 {

// y = W x for a ternary matrix packed by the AVX2 backend.
void avx_vnni_ternary_matmul(const InterleavedMatrix& w, const QuantizedActivations& x, float* y,
                             std::int64_t y_stride, int threads);

}  // namespace bitrun::avx2
