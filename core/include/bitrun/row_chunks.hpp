// Thread split of the SIMD matmuls (included by backend plugins, which build with OpenMP).
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace bitrun {

// Runs body(m0, m1) over chunks of 16 weight rows spread across `threads` threads. Inside a chunk the caller loops
// over token tiles outermost, so the chunk's weights and one tile's activations stay in L1: activations are read
// rows/16 times per matmul instead of once per row, which is what makes prompt processing compute-bound.
template <typename Body>
void for_row_chunks(std::int64_t rows, int threads, Body body) {
  constexpr std::int64_t kRowChunk = 16;
  const std::int64_t chunks = (rows + kRowChunk - 1) / kRowChunk;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (std::int64_t c = 0; c < chunks; ++c) body(c * kRowChunk, std::min(rows, (c + 1) * kRowChunk));
}

}  // namespace bitrun
