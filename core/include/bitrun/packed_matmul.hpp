// The loop structure of the SIMD matmuls, shared by the backend plugins (which build with OpenMP): the thread
// split over weight rows and the token tiling around ternary_row_tile.
#pragma once

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <vector>

#include "bitrun/parallel_for.hpp"
#include "bitrun/ternary_pack.hpp"

namespace bitrun {

// Runs body(m0, m1) over chunks of 16 weight rows spread across `threads` threads (see parallel_for). Inside a chunk the caller loops
// over token tiles outermost, so the chunk's weights and one tile's activations stay in L1: activations are read
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

// The float side of a tile of RowTile weight rows x TokenTile tokens whose integer dots TileDots computed
// together (TileDots(rows, packed blocks, activation rows, out), out[r * TokenTile + j] the dot of row m + r with
// token t + j): for activations with one scale group per token, the same operations in the same order as
// ternary_row_tile, so both paths give identical results.
template <int RowTile, int TokenTile, auto TileDots, int SumMultiplier, typename Packed>
inline void packed_row_tile(const Packed& p, std::int64_t blocks, const QuantizedActivations& x, std::int64_t t,
                            std::int64_t m, float* y, std::int64_t y_stride) {
  const std::uint8_t* rows[RowTile];
  const std::int8_t* q[TokenTile];
  alignas(64) std::int32_t dots[RowTile * TokenTile];
  for (int r = 0; r < RowTile; ++r) rows[r] = p.row(m + r);
  for (int j = 0; j < TokenTile; ++j) q[j] = x.row(t + j);
  TileDots(rows, blocks, q, dots);
  for (int r = 0; r < RowTile; ++r)
    for (int j = 0; j < TokenTile; ++j) {
      const auto dot = static_cast<std::int32_t>(static_cast<std::uint32_t>(dots[r * TokenTile + j]) -
                                                 static_cast<std::uint32_t>(SumMultiplier) *
                                                     static_cast<std::uint32_t>(x.sum[static_cast<std::size_t>(t + j)]));
      y[(t + j) * y_stride + m + r] = static_cast<float>(dot) * x.scale[static_cast<std::size_t>(t + j)] * p.row_scale[m + r];
    }
}

// y = W x over a backend's packed matrix (anything with rows(), row(m) and row_scale): tiles of Tile tokens
// through DotsTile, the remaining tokens one at a time through Dots1; see ternary_row_tile for the arithmetic.
// With RowTile > 1 (the backend's RowsDots computes RowTile rows x Tile tokens and reduces all their sums at
// once) and one activation scale per token, whole tiles of rows and tokens go through RowsDots: a row as short as
// a small model's is a few packed blocks, and reducing each (row, token) dot on its own would cost more than the
// dot.
template <int Tile, auto DotsTile, auto Dots1, std::int64_t BlockWeights, std::int64_t GroupBytes, int SumMultiplier,
          int RowTile = 1, auto RowsDots = nullptr, typename Packed>
void packed_matmul(const Packed& p, std::int64_t blocks, const QuantizedActivations& x, float* y,
                   std::int64_t y_stride, int threads) {
  const std::int64_t n = x.rows;
  for_row_chunks(p.rows(), threads_for_work(p.rows() * p.cols() * n, threads), [&](std::int64_t m0, std::int64_t m1) {
    std::int64_t t = 0;
    if constexpr (RowTile > 1) {
      if (x.groups() == 1) {
        for (; t + Tile <= n; t += Tile) {
          std::int64_t m = m0;
          for (; m + RowTile <= m1; m += RowTile)
            packed_row_tile<RowTile, Tile, RowsDots, SumMultiplier>(p, blocks, x, t, m, y, y_stride);
          for (; m < m1; ++m)
            ternary_row_tile<Tile, DotsTile, BlockWeights, GroupBytes, SumMultiplier>(p.row(m), blocks, x, t,
                                                                                    p.row_scale[m], y, y_stride, m);
        }
      }
    }
    for (; t + Tile <= n; t += Tile)
      for (std::int64_t m = m0; m < m1; ++m)
        ternary_row_tile<Tile, DotsTile, BlockWeights, GroupBytes, SumMultiplier>(p.row(m), blocks, x, t,
                                                                                p.row_scale[m], y, y_stride, m);
    for (; t < n; ++t)
      for (std::int64_t m = m0; m < m1; ++m)
        ternary_row_tile<1, Dots1, BlockWeights, GroupBytes, SumMultiplier>(p.row(m), blocks, x, t, p.row_scale[m], y,
                                                                          y_stride, m);
  });
}

}  // namespace bitrun
