// The loop structure of the SIMD matmuls, shared by the backend plugins (which build with OpenMP): the thread
// split over weight rows and the token tiling around ternary_row_tile.
#pragma once

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <type_traits>
#include <vector>

#include "bitrun/parallel_for.hpp"
#include "bitrun/ternary_pack.hpp"

namespace bitrun {

// Runs body(m0, m1) over chunks of 16 weight rows spread across `threads` threads (see parallel_for). Inside a
// chunk the caller loops over token tiles outermost, so the chunk's weights and one tile's activations stay in L1: activations are read
// rows/16 times per matmul instead of once per row, which is what makes prompt processing compute-bound.
template <typename Body>
void for_row_chunks(std::int64_t rows, int threads, Body body) {
  constexpr std::int64_t kRowChunk = 16;
  const std::int64_t chunks = (rows + kRowChunk - 1) / kRowChunk;
  parallel_for(chunks, threads, [&](std::int64_t c) { body(c * kRowChunk, std::min(rows, (c + 1) * kRowChunk)); });
}

// Runs fn(m, buffer) for rows m in [0, rows) across `threads` threads, each with its own buffer of `cols` bytes
// (for TernaryMatrixView::row). An exception must not leave an OpenMP region (that terminates the process), so
// the first one thrown is kept, the remaining rows are skipped, and it is rethrown afterwards: a corrupt tensor
// met while packing is a FormatError, not an abort.
template <typename Fn>
void for_each_row_parallel(std::int64_t rows, std::int64_t cols, int threads, Fn fn) {
  std::exception_ptr error;
  std::atomic<bool> failed{false};
#pragma omp parallel num_threads(threads)
  {
    std::vector<std::int8_t> buffer;
#pragma omp for schedule(static)
    for (std::int64_t m = 0; m < rows; ++m) {
      if (failed.load(std::memory_order_relaxed)) continue;
      try {
        if (buffer.empty()) buffer.resize(static_cast<std::size_t>(cols));
        fn(m, buffer.data());
      } catch (...) {
#pragma omp critical(bitrun_row_error)
        if (!error) error = std::current_exception();
        failed = true;
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

// The small-batch tiles a backend may provide for activations with one scale group per token. Each computes the
// integer dots of several weight rows with several tokens, reduces all their sums at once and applies the float
// side itself, in ternary_row_tile's order for one group (float(dot - SumMultiplier * sum_t) * scale_t) *
// row_scale_m, so every path gives identical results. Signature: (weight rows, cols, activation rows, their sums,
// their scales, the rows' scales, y at (first token, first row), y_stride).
//   RowsByTokens: 4 rows x 4 tokens.   Rows16: 16 rows x 1 token.
template <int Rows, int Tokens, auto RowsTile, typename Packed>
inline void packed_rows_tile(const Packed& p, const QuantizedActivations& x, std::int64_t t, std::int64_t m, float* y,
                             std::int64_t y_stride) {
  const std::uint8_t* rows[Rows];
  const std::int8_t* q[Tokens];
  for (int r = 0; r < Rows; ++r) rows[r] = p.row(m + r);
  for (int j = 0; j < Tokens; ++j) q[j] = x.row(t + j);
  RowsTile(rows, p.cols(), q, x.sum.data() + t, x.scale.data() + t, p.row_scale.data() + m, y + t * y_stride + m,
           y_stride);
}

// y = W x over a backend's packed matrix (anything with rows(), cols(), row(m) and row_scale): tiles of Tile tokens
// through DotsTile, the remaining tokens one at a time through Dots1; see ternary_row_tile for the arithmetic.
// With the backend's small-batch tiles (RowsByTokens, Rows16; nullptr for none) and one activation scale per
// token, tiles of 4 rows x 4 tokens and then (short rows only) 16 rows x 1 token go through them instead: a row as
// short as a small model's is a few packed blocks, and reducing each (row, token) dot on its own costs more than
// the dot.
template <int Tile, auto DotsTile, auto Dots1, std::int64_t BlockWeights, std::int64_t GroupBytes, int SumMultiplier,
          auto RowsByTokens = nullptr, auto Rows16 = nullptr, typename Packed>
void packed_matmul(const Packed& p, std::int64_t blocks, const QuantizedActivations& x, float* y,
                   std::int64_t y_stride, int threads) {
  const std::int64_t n = x.rows;
  auto row_tile = [&](std::int64_t t, std::int64_t m) {
    ternary_row_tile<Tile, DotsTile, BlockWeights, GroupBytes, SumMultiplier>(p.row(m), blocks, x, t, p.row_scale[m],
                                                                            y, y_stride, m);
  };
  auto row_one = [&](std::int64_t t, std::int64_t m) {
    ternary_row_tile<1, Dots1, BlockWeights, GroupBytes, SumMultiplier>(p.row(m), blocks, x, t, p.row_scale[m], y,
                                                                      y_stride, m);
  };
  for_row_chunks(p.rows(), threads_for_work(p.rows() * p.cols() * n, threads), [&](std::int64_t m0, std::int64_t m1) {
    std::int64_t t = 0;
    if constexpr (!std::is_same_v<decltype(RowsByTokens), std::nullptr_t>) {
      static_assert(Tile == 4, "RowsByTokens tiles are 4 rows x 4 tokens");
      // Single tokens go through Rows16 only on short rows (at most 4 packed blocks), where reducing each row on
      // its own dominates. On long rows a decode step streams the weights from memory, and 16 rows read side by
      // side (16 streams) measured 30% slower on a 2B model than one row after another.
      const bool short_rows = p.cols() <= 4 * BlockWeights;
      if (x.groups() == 1) {
        for (; t + Tile <= n; t += Tile) {
          std::int64_t m = m0;
          for (; m + 4 <= m1; m += 4) packed_rows_tile<4, 4, RowsByTokens>(p, x, t, m, y, y_stride);
          for (; m < m1; ++m) row_tile(t, m);
        }
        for (; t < n; ++t) {
          if (m1 - m0 == 16 && short_rows) {
            packed_rows_tile<16, 1, Rows16>(p, x, t, m0, y, y_stride);
          } else {
            for (std::int64_t m = m0; m < m1; ++m) row_one(t, m);
          }
        }
        return;
      }
    }
    for (; t + Tile <= n; t += Tile)
      for (std::int64_t m = m0; m < m1; ++m) row_tile(t, m);
    for (; t < n; ++t)
      for (std::int64_t m = m0; m < m1; ++m) row_one(t, m);
  });
}

}  // namespace bitrun
