// The SIMD backends' matmul over row-interleaved matrices (ternary_pack.hpp): one loop structure and one float
// epilogue for every ISA, which brings its vector operations as a Traits type:
//   kLanes                          int32 lanes of a vector: the rows of a group
//   kGroupTile, kTokenTile          row groups (1 or 2) x tokens per tile: what the registers hold sums for
//   [kOneTokenGroupTile]            optional: row groups (1, 2 or 4) per tile for one token, and
//   [kTwoTokenGroupTile]            for two (else kGroupTile)
//   kNarrowSums                     whether dot<false> adds into narrow per-block sums, widened by widen(acc, sums)
//   kInt8Offset                     what pack_int8 adds to each weight (128 where the multiply-add wants unsigned)
//   Int, Float                      the integer and float vector types
//   Int zero(); Int load(const std::uint8_t*)                   (64-byte aligned data)
//   Int field(Int chunk, int shift)                             each byte's 2-bit field at `shift`
//   Int dot<Int8>(Int acc, Int w, const std::int8_t* a)         acc + per lane sum_i w.byte[i] * a[i], i < 4
//   Int widen(Int acc, Int sums)                                (with kNarrowSums) acc + the widened sums
//   Float scaled(Int dot, std::int32_t offset, float scale)     float(dot - offset) * scale
//   Float add(Float, Float); Float mul(Float, const float* v)
//   void store(float* y, Float v, std::int64_t lanes)           the first `lanes` lanes
// Backends build with OpenMP.
#pragma once

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <exception>
#include <vector>

#include "bitrun/base/aligned.hpp"
#include "backend_common/parallel_for.hpp"
#include "bitrun/model/ternary_pack.hpp"

namespace bitrun {

// A matrix in a row-interleaved layout, with its row scales padded to whole groups (zeros past the rows).
struct InterleavedMatrix {
  bool int8 = false;   // pack_int8 weights, one byte each, rather than 2-bit ternary codes
  std::int64_t rows = 0, cols = 0, group_rows = 0, group_bytes = 0;
  UninitializedAlignedVector<std::uint8_t> data;   // every byte written by pack_interleaved
  std::vector<float> row_scale;

  std::int64_t groups() const { return (rows + group_rows - 1) / group_rows; }
  const std::uint8_t* group(std::int64_t g) const { return data.data() + g * group_bytes; }
  std::size_t bytes() const { return data.size() + row_scale.size() * sizeof(float); }
};

// Inside a parallel region, before the packing loop: each thread commits its share of the packed buffer's pages
// and of the mapped source's (populate_pages), so the packing threads find the memory there instead of faulting
// page by page. On this project's VMs a first write to a 4 KB page cost ~5 us in the guest and as much again in the
// hypervisor; committed in one call per 2 MB slice (in 2 MB pages: the buffer is 2 MB-aligned and advised for huge
// pages), a 2B model's load went from 1.4-2.3 s to 1.0-1.2 s.
inline void commit_slice_share(const std::uint8_t* data, std::size_t bytes, bool write = true) {
  const auto slices = static_cast<std::int64_t>((bytes + kHugePageBytes - 1) / kHugePageBytes);
#pragma omp for schedule(dynamic, 1)
  for (std::int64_t s = 0; s < slices; ++s) {
    const std::size_t begin = static_cast<std::size_t>(s) * kHugePageBytes;
    populate_pages(data + begin, std::min(kHugePageBytes, bytes - begin), write);
  }
}

// Packs `w` into groups of `group_rows` rows across `threads` threads. An exception must not leave an OpenMP region
// (that terminates the process), so the first one thrown is kept, the remaining groups are skipped, and it is
// rethrown afterwards: a corrupt tensor met while packing is a FormatError, not an abort.
inline void pack_interleaved(const TernaryMatrixView& w, std::int64_t group_rows, bool int8, int int8_offset,
                             int threads, InterleavedMatrix& out) {
  out.int8 = int8;
  out.rows = w.rows;
  out.cols = w.cols;
  out.group_rows = group_rows;
  out.group_bytes = interleaved_group_bytes(w.cols, group_rows, int8);
  const std::int64_t groups = out.groups();
  out.data.resize(static_cast<std::size_t>(groups * out.group_bytes));
  advise_huge_pages(out.data.data(), out.data.size());
  out.row_scale.assign(static_cast<std::size_t>(groups * group_rows), 0.0f);
  std::copy(w.row_scale, w.row_scale + w.rows, out.row_scale.begin());
  std::exception_ptr error;
  std::atomic<bool> failed{false};
  const std::size_t source_bytes = static_cast<std::size_t>(w.rows * (w.cols / 4));   // I2_S: 2 bits a weight
#pragma omp parallel num_threads(threads)
  {
    commit_slice_share(out.data.data(), out.data.size());
    if (w.i2s) commit_slice_share(w.i2s, source_bytes, false);
    std::vector<std::uint8_t> buffer;
    // Dynamic: a group's time is mostly page faults on the mapped file, which vary; a static split left one thread
    // waiting at the end of each matrix (libgomp's spin was 16% of a 2B load's samples).
#pragma omp for schedule(dynamic, 4)
    for (std::int64_t g = 0; g < groups; ++g) {
      if (failed.load(std::memory_order_relaxed)) continue;
      try {
        if (buffer.empty())
          buffer.resize(static_cast<std::size_t>(interleaved_pack_buffer_bytes(w.cols, group_rows, int8)));
        pack_interleaved_group(w, g * group_rows, group_rows, int8, int8_offset, buffer.data(),
                               out.data.data() + g * out.group_bytes);
      } catch (...) {
#pragma omp critical(bitrun_pack_error)
        if (!error) error = std::current_exception();
        failed = true;
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

// How far ahead of the loads a group's weights are prefetched. Decoding streams each weight once from memory, and
// the hardware prefetcher alone left a core at 15-18 GB/s where it can read 23-26 (2B shapes, one thread).
constexpr std::int64_t kPrefetchBytes = 2048;

// Asks for the cache lines of `bytes` bytes at p (a multiple of 64).
inline void prefetch_lines(const std::uint8_t* p, std::int64_t bytes) {
  for (std::int64_t l = 0; l < bytes; l += 64) __builtin_prefetch(p + l);
}

// Independent multiply-add chains a tile keeps: a decode tile (1 token, 1-2 row groups) has only 1-2 accumulators,
// so each multiply-add waited for the previous one's latency (4-5 cycles) and one-token 2B decode streamed its
// ternary weights at 17 GB/s where the Q6_K output matrix beside it reached 28. Small tiles split each accumulator
// into up to 4 partial sums (one per 2-bit field, or per step of the int8 loop), added up at the end.
constexpr int kMinChains = 8;

template <class Tr, int RG, int T>
constexpr int accumulator_splits() {
  return Tr::kNarrowSums ? 1 : std::clamp(kMinChains / (RG * T), 1, 4);
}

// acc[rg * T + t] += the dots of the rows of groups w, w + group_bytes, ... (RG of them) with tokens q[0..T) over
// weights [k0, k1) (multiples of 128). Every loop bound but the outer one is a constant, so the accumulators stay in
// registers; each weight load serves all T tokens and each broadcast activation dword all RG groups.
template <class Tr, bool Int8, int RG, int T>
__attribute__((always_inline)) inline void interleaved_dots(const std::uint8_t* w, std::int64_t group_bytes,
                                                            std::int64_t k0, std::int64_t k1,
                                                            const std::int8_t* const* q, typename Tr::Int* acc) {
  constexpr std::int64_t L = Tr::kLanes;
  constexpr int S = accumulator_splits<Tr, RG, T>(), N = RG * T;
  static_assert(S == 1 || S == 2 || S == 4, "the int8 loop's S steps of 4 weights must divide its 32-weight stride");
  using Int = typename Tr::Int;
  // split[s * N + i]: partial sums s >= 1 of acc[i] (split 0 is acc itself).
  Int split[S > 1 ? (S - 1) * N : 1];
  for (int i = 0; i < (S - 1) * N; ++i) split[i] = Tr::zero();
  auto chain = [&](int s) { return s == 0 ? acc : split + (s - 1) * N; };
  if constexpr (Int8) {
    for (std::int64_t k8 = k0; k8 < k1; k8 += 4 * S) {   // S steps of 4 weights, one per chain (4 * S divides 32)
      if (k8 % 32 == 0)   // the next 8 steps' weights (4 * L bytes a step), kPrefetchBytes ahead
        for (int rg = 0; rg < RG; ++rg) prefetch_lines(w + rg * group_bytes + k8 * L + kPrefetchBytes, 32 * L);
#pragma GCC unroll 4
      for (int s = 0; s < S; ++s) {
        const std::int64_t k = k8 + 4 * s;
        Int* sums = chain(s);
        Int wv[RG];
#pragma GCC unroll 4
        for (int rg = 0; rg < RG; ++rg) wv[rg] = Tr::load(w + rg * group_bytes + k * L);
#pragma GCC unroll 16
        for (int t = 0; t < T; ++t)
#pragma GCC unroll 4
          for (int rg = 0; rg < RG; ++rg)
            sums[rg * T + t] = Tr::template dot<true>(sums[rg * T + t], wv[rg], q[t] + k);
      }
    }
  } else {
    for (std::int64_t b = k0 / kInterleavedBlock; b < k1 / kInterleavedBlock; ++b) {
      for (int rg = 0; rg < RG; ++rg) prefetch_lines(w + rg * group_bytes + b * 8 * 4 * L + kPrefetchBytes, 8 * 4 * L);
      // With narrow sums a block's products gather in per-block sums first (int16 on AVX2), widened into acc once.
      Int part[Tr::kNarrowSums ? N : 1];
      if constexpr (Tr::kNarrowSums)
        for (int i = 0; i < N; ++i) part[i] = Tr::zero();
#pragma GCC unroll 8
      for (int d = 0; d < 8; ++d) {
        Int chunk[RG];
#pragma GCC unroll 4
        for (int rg = 0; rg < RG; ++rg) chunk[rg] = Tr::load(w + rg * group_bytes + (b * 8 + d) * 4 * L);
#pragma GCC unroll 4
        for (int f = 0; f < 4; ++f) {
          const std::int64_t k = b * kInterleavedBlock + 32 * f + 4 * d;
          Int* sums = Tr::kNarrowSums ? part : chain(f % S);
          Int codes[RG];
#pragma GCC unroll 4
          for (int rg = 0; rg < RG; ++rg) codes[rg] = Tr::field(chunk[rg], 6 - 2 * f);
#pragma GCC unroll 16
          for (int t = 0; t < T; ++t)
#pragma GCC unroll 4
            for (int rg = 0; rg < RG; ++rg)
              sums[rg * T + t] = Tr::template dot<false>(sums[rg * T + t], codes[rg], q[t] + k);
        }
      }
      if constexpr (Tr::kNarrowSums)
        for (int i = 0; i < N; ++i) acc[i] = Tr::widen(acc[i], part[i]);
    }
  }
  for (int s = 1; s < S; ++s)
    for (int i = 0; i < N; ++i) acc[i] = Tr::widen(acc[i], split[(s - 1) * N + i]);
}

// y rows of tokens t0..t0+T-1, columns of row groups g0..g0+RG-1: the dots per activation scale group, then the
// float side as the reference performs it, in its order: per activation scale group float(dot - kSumMultiplier *
// sum) * scale (kSumMultiplier undoes the weights' unsigned offset), summed in group order, times the row scale.
template <class Tr, bool Int8, int RG, int T>
void interleaved_tile(const InterleavedMatrix& p, const QuantizedActivations& x, std::int64_t g0, std::int64_t t0,
                      float* y, std::int64_t y_stride) {
  constexpr std::int64_t L = Tr::kLanes;
  constexpr std::int32_t kSumMultiplier = Int8 ? Tr::kInt8Offset : 1;
  using Int = typename Tr::Int;
  using Float = typename Tr::Float;
  const std::int8_t* q[T];
  for (int t = 0; t < T; ++t) q[t] = x.row(t0 + t);
  const std::int64_t groups = x.groups(), padded = interleaved_cols(p.cols);
  const std::int64_t block = x.block ? x.block : padded;
  // Modulo 2^32, as the dot itself: the offset dot may wrap on very long rows even when the true dot fits.
  auto offset = [&](std::size_t i) {
    return static_cast<std::int32_t>(static_cast<std::uint32_t>(kSumMultiplier) * static_cast<std::uint32_t>(x.sum[i]));
  };
  auto store = [&](int rg, int t, Float v) {
    const std::int64_t m = (g0 + rg) * L;
    Tr::store(y + (t0 + t) * y_stride + m, Tr::mul(v, p.row_scale.data() + m), std::min(L, p.rows - m));
  };
  Int acc[RG * T];
  if (groups == 1) {   // one scale per token: straight from the integer sums to y
#pragma GCC unroll 16
    for (int i = 0; i < RG * T; ++i) acc[i] = Tr::zero();
    interleaved_dots<Tr, Int8, RG, T>(p.group(g0), p.group_bytes, 0, padded, q, acc);
    for (int t = 0; t < T; ++t) {
      const auto i = static_cast<std::size_t>(t0 + t);
      for (int rg = 0; rg < RG; ++rg) store(rg, t, Tr::scaled(acc[rg * T + t], offset(i), x.scale[i]));
    }
    return;
  }
  // The float sums across scale groups are kept in memory, not registers: next to the RG * T integer accumulators
  // (16 of AVX-512's 32 registers) they made the compiler spill accumulators inside the dot loop, which cost TQ1_0 /
  // TQ2_0 prefill (256-weight activation groups) about 15% of the matmul time.
  alignas(64) float sums[RG * T * L];
  auto sum_of = [&](int i) {
    Float v;
    std::memcpy(&v, sums + i * L, sizeof v);
    return v;
  };
  for (std::int64_t g = 0; g < groups; ++g) {
#pragma GCC unroll 16
    for (int i = 0; i < RG * T; ++i) acc[i] = Tr::zero();
    interleaved_dots<Tr, Int8, RG, T>(p.group(g0), p.group_bytes, g * block, std::min(padded, (g + 1) * block), q, acc);
    for (int t = 0; t < T; ++t) {
      const auto i = static_cast<std::size_t>((t0 + t) * groups + g);
      for (int rg = 0; rg < RG; ++rg) {
        Float part = Tr::scaled(acc[rg * T + t], offset(i), x.scale[i]);
        if (g > 0) part = Tr::add(sum_of(rg * T + t), part);
        std::memcpy(sums + (rg * T + t) * L, &part, sizeof part);
      }
    }
    asm volatile("" : : "r"(sums) : "memory");   // the sums stay in memory across the next group's dots
  }
  for (int rg = 0; rg < RG; ++rg)
    for (int t = 0; t < T; ++t) store(rg, t, sum_of(rg * T + t));
}

// The last tokens of x (rest < T of them) against row groups g0..: one tile of exactly `rest` tokens.
template <class Tr, bool Int8, int RG, int T>
void interleaved_rest(const InterleavedMatrix& p, const QuantizedActivations& x, std::int64_t g0, std::int64_t t0,
                      std::int64_t rest, float* y, std::int64_t y_stride) {
  if constexpr (T > 0) {
    if (rest == T) return interleaved_tile<Tr, Int8, RG, T>(p, x, g0, t0, y, y_stride);
    interleaved_rest<Tr, Int8, RG, T - 1>(p, x, g0, t0, rest, y, y_stride);
  }
}

// Tokens [t, n) of x against row groups g0..g0+RG-1: tiles of the ISA's kTokenTile tokens, then one tile of the rest.
template <class Tr, bool Int8, int RG>
void interleaved_groups(const InterleavedMatrix& p, const QuantizedActivations& x, std::int64_t g0, std::int64_t t,
                        std::int64_t n, float* y, std::int64_t y_stride) {
  constexpr int kTile = Tr::kTokenTile;
  for (; t + kTile <= n; t += kTile) interleaved_tile<Tr, Int8, RG, kTile>(p, x, g0, t, y, y_stride);
  interleaved_rest<Tr, Int8, RG, kTile - 1>(p, x, g0, t, n - t, y, y_stride);
}

// Activation bytes of one token chunk. A prompt's activations (512 tokens x 2560-6912 bytes on 2B shapes) are
// larger than a core's L2, and every tile of row groups re-reads all of them; a chunk stays in L2 across tiles.
// Half of Zen 5's 1 MiB L2 measured best (256 KiB and 1 MiB were 2-4% slower on a 512-row 2B forward).
constexpr std::int64_t kTokenChunkBytes = 512 * 1024;

// y (tokens x rows, y_stride floats per token) = W x over tiles of kTile (1, 2 or 4) row groups. Each thread takes a
// contiguous range of tiles and runs it over the tokens a chunk at a time: a tile's weights stay in L1 while the
// chunk's token tiles stream past them, and the chunk's activations stay in L2 across the thread's tiles. The
// weights are read once per chunk (from L3 after the first, for a matrix that fits).
template <class Tr, int kTile>
void interleaved_matmul_tiles(const InterleavedMatrix& p, const QuantizedActivations& x, float* y,
                              std::int64_t y_stride, int threads) {
  static_assert(kTile == 1 || kTile == 2 || kTile == 4);
  const std::int64_t groups = p.groups(), tiles = (groups + kTile - 1) / kTile;
  const std::int64_t chunk =
      std::max<std::int64_t>(1, kTokenChunkBytes / interleaved_cols(p.cols) / Tr::kTokenTile) * Tr::kTokenTile;
  const int used = static_cast<int>(std::min<std::int64_t>(tiles, threads_for_work(p.rows * p.cols * x.rows, threads)));
  parallel_for(used, used, [&](std::int64_t part) {
    const std::int64_t first = tiles * part / used, last = tiles * (part + 1) / used;
    for (std::int64_t t0 = 0; t0 < x.rows; t0 += chunk) {
      const std::int64_t t1 = std::min(x.rows, t0 + chunk);
      for (std::int64_t tile = first; tile < last; ++tile) {
        const std::int64_t g0 = kTile * tile;
        if (g0 + kTile <= groups) {
          p.int8 ? interleaved_groups<Tr, true, kTile>(p, x, g0, t0, t1, y, y_stride)
                 : interleaved_groups<Tr, false, kTile>(p, x, g0, t0, t1, y, y_stride);
        } else {   // the matrix's last groups, fewer than a tile: one at a time
          for (std::int64_t g = g0; g < groups; ++g)
            p.int8 ? interleaved_groups<Tr, true, 1>(p, x, g, t0, t1, y, y_stride)
                   : interleaved_groups<Tr, false, 1>(p, x, g, t0, t1, y, y_stride);
        }
      }
    }
  });
}

// The ISA's kGroupTile, or for one or two tokens its kOneTokenGroupTile / kTwoTokenGroupTile where it declares
// them. With few tokens, more row groups per tile are what keep the loop from issuing a broadcast per multiply-add,
// and put more weight streams in flight: decoding reads every weight once from memory, and one or two streams per
// core left it waiting on the loads of each block.
template <class Tr>
void interleaved_matmul(const InterleavedMatrix& p, const QuantizedActivations& x, float* y, std::int64_t y_stride,
                        int threads) {
  if constexpr (requires { Tr::kOneTokenGroupTile; }) {
    if (x.rows == 1) return interleaved_matmul_tiles<Tr, Tr::kOneTokenGroupTile>(p, x, y, y_stride, threads);
  }
  if constexpr (requires { Tr::kTwoTokenGroupTile; }) {
    if (x.rows == 2) return interleaved_matmul_tiles<Tr, Tr::kTwoTokenGroupTile>(p, x, y, y_stride, threads);
  }
  interleaved_matmul_tiles<Tr, Tr::kGroupTile>(p, x, y, y_stride, threads);
}

}  // namespace bitrun
