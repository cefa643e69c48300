// The AVX2 backend's ternary matmul for several tokens on CPUs with AVX-VNNI (VEX-encoded vpdpbusd: Alder Lake and
// later, Zen 4 and later), compiled with -mavxvnni in its own translation unit and called only when the CPU has the
// feature. One vpdpbusd replaces vpmaddubsw + vpmaddwd + vpaddd, so prompt processing and multi-row steps gain;
// a token or two stream the weights from memory, where the plain path's independent sums do as well and a single
// vpdpbusd chain per row group is latency-bound, so those stay on the plain path (as do int8 matrices).
#pragma once

#include <cstdint>

#include "backend_common/packed_matmul.hpp"

namespace bitrun::avx2 {

// Tokens from which the VNNI path pays: a whole tile of 8 (2B shapes, one thread: 1 token ran at half the plain
// path's speed, 4 tokens 20% slower, 8 and more 20-25% faster).
inline constexpr std::int64_t kAvxVnniMinTokens = 8;

// y = W x for a ternary matrix packed by the AVX2 backend.
void avx_vnni_ternary_matmul(const InterleavedMatrix& w, const QuantizedActivations& x, float* y,
                             std::int64_t y_stride, int threads);

}  // namespace bitrun::avx2
