// The SIMD backends' Q6_K matmul (Backend::q6_k_matmul's contract) over q6k_interleaved.hpp's layout, written once
// for every ISA, which brings its vector operations as a Traits type (see below). Backends build with OpenMP.
#pragma once

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <vector>

#include "bitrun/base/error.hpp"
#include "bitrun/gguf/ggml_types.hpp"
#include "backend_common/packed_matmul.hpp"
#include "backend_common/parallel_for.hpp"
#include "bitrun/model/q6k_interleaved.hpp"

namespace bitrun {

// Packs `w` into groups of `group_rows` rows (4..64, a multiple of 4) on `threads` threads (backends build with
// OpenMP). As pack_interleaved: an exception must not leave the OpenMP region, so the first is kept and rethrown.
inline void pack_q6k_interleaved(const Q6kMatrixView& w, std::int64_t group_rows, int threads,
                                 Q6kInterleavedMatrix& out) {
  if (!w.valid()) throw Error("pack_q6_k: empty matrix or columns not a multiple of 256");
  if (group_rows < 4 || group_rows > 64 || group_rows % 4 != 0) throw Error("pack_q6_k: bad group size");
  out.rows = w.rows;
  out.cols = w.cols;
  out.group_rows = group_rows;
  const std::int64_t groups = out.groups();
  out.data.resize(static_cast<std::size_t>(groups * out.group_bytes()));
  advise_huge_pages(out.data.data(), out.data.size());
  std::exception_ptr error;
  std::atomic<bool> failed{false};
  const std::size_t source_bytes =
      static_cast<std::size_t>(w.rows * (w.cols / kQ6kBlock) * type_traits(GgmlType::Q6_K).block_bytes);
#pragma omp parallel num_threads(threads)
  {
    commit_slice_share(out.data.data(), out.data.size());
    commit_slice_share(w.blocks, source_bytes, false);
    // Dynamic, as in pack_interleaved: page faults on the mapped file make the groups' times uneven.
#pragma omp for schedule(dynamic, 4)
    for (std::int64_t g = 0; g < groups; ++g) {
      if (failed.load(std::memory_order_relaxed)) continue;
      try {
        pack_q6k_group(w, g * group_rows, group_rows, out.data.data() + g * out.group_bytes());
      } catch (...) {
#pragma omp critical(bitrun_pack_q6k_error)
        if (!error) error = std::current_exception();
        failed = true;
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

// The kernel's per-ISA operations, besides packed_matmul.hpp's kLanes, Int, Float, zero, load, add and store:
//   kQ6TokenTile                                  tokens per tile
//   Int q6_weights(Int low, Int high, int quad)   the q6 bytes of weights 4 quad .. 4 quad + 3: nibble quad / 32 of
//                                                 low nibble vector quad % 32, field quad / 16 of high vector quad % 16
//   Int q6_dot(Int acc, Int w, const std::int8_t* a)  acc + per lane sum_i w.byte[i] (unsigned) * a[i], i < 4
//   Int load_scales(const std::int8_t* p)        R int8 -> int32 lanes
//   Int set1(std::int32_t); Int mullo(Int, Int); Int add32(Int, Int)
//   Float to_float(Int); Float mul(Float, const float* v); Float mul_scalar(Float, float)

// acc[t] (float lanes of the group's rows) += (float(dot_b) * d) * scale of token t, for one 256-weight block.
// a[t]: token t's 256 activations of the block; bias[t]: -32 * the sum of each of their 16 sub-blocks.
template <class Tr, int T>
__attribute__((always_inline)) inline void q6k_block_dots(const std::uint8_t* blk, const std::int8_t* const* a,
                                                          const std::int32_t* const* bias, const float* scale,
                                                          typename Tr::Float* acc) {
  constexpr std::int64_t L = Tr::kLanes;
  using Int = typename Tr::Int;
  const std::uint8_t* low = blk;
  const std::uint8_t* high = blk + 128 * L;
  const auto* scales = reinterpret_cast<const std::int8_t*>(blk + 192 * L);
  const auto* d = reinterpret_cast<const float*>(blk + 208 * L);
  Int dot[T];
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) dot[t] = Tr::zero();
#pragma GCC unroll 16
  for (int j = 0; j < 16; ++j) {   // sub-block j: weights 16j .. 16j + 15, quads 4j .. 4j + 3
    Int sub[T];
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) sub[t] = Tr::set1(bias[t][j]);   // starts at -32 * sum(a): the values' offset
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      const int quad = 4 * j + i;
      const Int w = Tr::q6_weights(Tr::load(low + (quad % 32) * 4 * L), Tr::load(high + (quad % 16) * 4 * L), quad);
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) sub[t] = Tr::q6_dot(sub[t], w, a[t] + 4 * quad);
    }
    const Int sc = Tr::load_scales(scales + j * L);
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) dot[t] = Tr::add32(dot[t], Tr::mullo(sub[t], sc));
  }
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) acc[t] = Tr::add(acc[t], Tr::mul_scalar(Tr::mul(Tr::to_float(dot[t]), d), scale[t]));
}

// Tokens t0 .. t0 + T - 1 against row group g.
template <class Tr, int T>
void q6k_tile(const Q6kInterleavedMatrix& p, const QuantizedActivations& x, const std::vector<std::int32_t>& bias,
              std::int64_t g, std::int64_t t0, float* y, std::int64_t y_stride) {
  constexpr std::int64_t L = Tr::kLanes;
  using Float = typename Tr::Float;
  const std::int64_t blocks = p.blocks(), groups = x.groups();
  const std::int64_t per_group = x.block ? x.block / kQ6kBlock : blocks;
  const std::uint8_t* w = p.group(g);
  Float acc[T];
  for (int t = 0; t < T; ++t) acc[t] = Tr::to_float(Tr::zero());
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::uint8_t* blk = w + b * p.block_bytes();
    for (std::int64_t l = 0; l < p.block_bytes(); l += 64) __builtin_prefetch(blk + 2 * p.block_bytes() + l);
    const std::int8_t* a[T];
    const std::int32_t* sub_bias[T];
    float scale[T];
    for (int t = 0; t < T; ++t) {
      a[t] = x.row(t0 + t) + b * kQ6kBlock;
      sub_bias[t] = bias.data() + (t0 + t) * blocks * 16 + b * 16;
      scale[t] = x.scale[static_cast<std::size_t>((t0 + t) * groups + b / per_group)];
    }
    q6k_block_dots<Tr, T>(blk, a, sub_bias, scale, acc);
  }
  const std::int64_t m = g * L;
  for (int t = 0; t < T; ++t) Tr::store(y + (t0 + t) * y_stride + m, acc[t], std::min(L, p.rows - m));
}

template <class Tr, int T>
void q6k_rest(const Q6kInterleavedMatrix& p, const QuantizedActivations& x, const std::vector<std::int32_t>& bias,
              std::int64_t g, std::int64_t t0, std::int64_t rest, float* y, std::int64_t y_stride) {
  if constexpr (T > 0) {
    if (rest == T) return q6k_tile<Tr, T>(p, x, bias, g, t0, y, y_stride);
    q6k_rest<Tr, T - 1>(p, x, bias, g, t0, rest, y, y_stride);
  }
}

// y (tokens x rows) = W x. Threads split the row groups; each group's weights stay in L1/L2 while the token tiles
// pass. Throws nothing: the caller checked shapes and x's scale groups (whole multiples of 256 columns).
template <class Tr>
void q6k_interleaved_matmul(const Q6kInterleavedMatrix& p, const QuantizedActivations& x, float* y,
                            std::int64_t y_stride, int threads) {
  constexpr int kTile = Tr::kQ6TokenTile;
  const std::int64_t blocks = p.blocks(), n = x.rows;
  // -32 * each 16-activation sub-block's sum: starting each sub-block's dot there turns the unsigned q6 values
  // into the weights' integers (q6 - 32) exactly.
  std::vector<std::int32_t> bias(static_cast<std::size_t>(n * blocks * 16));
  for (std::int64_t t = 0; t < n; ++t) {
    const std::int8_t* q = x.row(t);
    for (std::int64_t s = 0; s < blocks * 16; ++s) {
      std::int32_t sum = 0;
      for (int k = 0; k < 16; ++k) sum += q[s * 16 + k];
      bias[static_cast<std::size_t>(t * blocks * 16 + s)] = -32 * sum;
    }
  }
  parallel_for(p.groups(), threads_for_work(p.rows * p.cols * n, threads), [&](std::int64_t g) {
    std::int64_t t = 0;
    for (; t + kTile <= n; t += kTile) q6k_tile<Tr, kTile>(p, x, bias, g, t, y, y_stride);
    q6k_rest<Tr, kTile - 1>(p, x, bias, g, t, n - t, y, y_stride);
  });
}

}  // namespace bitrun
