// Attention over the KV cache written once for the SIMD backends: each includes this in its ISA translation
// unit, so the same loops compile to AVX2 or AVX-512 there, with its own row conversions for the cache's storage
// (HalfToFloat for F16, Int8ToFloat for int8; see KvRowReader). Same contract as Backend::attention; results differ from the scalar reference only by float
// summation order (and the online softmax's rescaling).
//
// ExpShifted(w, n, max) sets w[i] = e^(w[i] - max) and returns their sum (the plugin's vectorized exp).
//
// Work is split into tasks of (KV head, block of up to kRowBlock query rows, range of positions). A task walks its
// positions in chunks of kPosChunk with an online softmax (running max, running sum, rescaled accumulators), so
// each cached K and V row is converted to float once per task and then used by every query vector of the task:
// the rows of the block times the query heads sharing the KV head (GQA). Prompt processing therefore converts the
// cache rows/kRowBlock times instead of once per row. When there are fewer (head, row block) tasks than threads
// can use - decoding one row against a long context - the positions are split as well, and the partial softmax
// states are merged afterwards, so both threads work on a single row.
#pragma once

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "bitrun/model/kv_layer_view.hpp"
#include "backend_common/parallel_for.hpp"

namespace bitrun {
namespace attention_detail {

constexpr std::int64_t kRowBlock = 16;       // query rows per task
constexpr std::int64_t kPosChunk = 32;       // cached positions converted and scored together
constexpr std::int64_t kMinSplitPositions = 256;   // a position split shorter than this is not worth its merge

// A vector of Lanes floats in GCC's vector extension: the same source compiles to ymm registers in the AVX2
// unit and zmm in the AVX-512 one, with loads and stores the compiler cannot mistake for scalar code.
// (Spelled out per width: GCC ignores vector_size with a dependent size in an alias template.)
template <int Lanes>
struct FloatVecOf;
template <>
struct FloatVecOf<8> {
  typedef float type __attribute__((vector_size(32)));
};
template <>
struct FloatVecOf<16> {
  typedef float type __attribute__((vector_size(64)));
};
template <int Lanes>
using FloatVec = typename FloatVecOf<Lanes>::type;

template <int Lanes>
inline FloatVec<Lanes> load(const float* p) {
  FloatVec<Lanes> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <int Lanes>
inline void store(float* p, FloatVec<Lanes> v) {
  std::memcpy(p, &v, sizeof v);
}

// Every lane = x. (Not `V{} + x`: without fast-math the compiler must keep that addition, since 0 + -0 is +0, and
// emits an add and a broadcast where one broadcast from memory does.)
template <int Lanes>
inline FloatVec<Lanes> splat(float x) {
  if constexpr (Lanes == 8) {
    return reinterpret_cast<FloatVec<8>>(_mm256_set1_ps(x));
  } else {
#ifdef __AVX512F__
    return reinterpret_cast<FloatVec<16>>(_mm512_set1_ps(x));
#else
    static_assert(Lanes == 8, "16 lanes need AVX-512");
#endif
  }
}

// a * b + c in one rounding. The backends build with -ffp-contract=off (their matmuls must equal the reference bit
// for bit), which also keeps the compiler from fusing attention's multiply-adds; attention is compared with a
// tolerance, and the fused form halves its arithmetic.
inline FloatVec<8> fma(FloatVec<8> a, FloatVec<8> b, FloatVec<8> c) {
  return reinterpret_cast<FloatVec<8>>(_mm256_fmadd_ps(reinterpret_cast<__m256>(a), reinterpret_cast<__m256>(b),
                                                       reinterpret_cast<__m256>(c)));
}
#ifdef __AVX512F__
inline FloatVec<16> fma(FloatVec<16> a, FloatVec<16> b, FloatVec<16> c) {
  return reinterpret_cast<FloatVec<16>>(_mm512_fmadd_ps(reinterpret_cast<__m512>(a), reinterpret_cast<__m512>(b),
                                                        reinterpret_cast<__m512>(c)));
}
#endif

// Tree reduction of Lanes registers to one: lane p of the result is the sum of the lanes of a[p]. Each level adds
// pairs of registers Half lanes apart after interleaving their blocks of Half lanes, which halves the registers and
// doubles what each lane sums; log2(Lanes) levels in all, instead of a horizontal sum per register.
template <int Lanes, int Half>
constexpr int low_halves(int lane) {   // within each block of 2 * Half lanes: x's first Half, then y's first Half
  const int block = lane / (2 * Half) * (2 * Half), within = lane % (2 * Half);
  return within < Half ? block + within : Lanes + block + within - Half;
}
template <int Lanes, int Half, std::size_t... I>
inline FloatVec<Lanes> fold_pair(FloatVec<Lanes> x, FloatVec<Lanes> y, std::index_sequence<I...>) {
  return __builtin_shufflevector(x, y, low_halves<Lanes, Half>(static_cast<int>(I))...) +
         __builtin_shufflevector(x, y, (low_halves<Lanes, Half>(static_cast<int>(I)) + Half)...);
}
template <int Lanes, int Count = Lanes>
inline FloatVec<Lanes> reduce_lanes(FloatVec<Lanes>* a) {
  if constexpr (Count == 1) {
    return a[0];
  } else {
    constexpr int Half = Count / 2;
    for (int i = 0; i < Half; ++i) a[i] = fold_pair<Lanes, Half>(a[i], a[i + Half], std::make_index_sequence<Lanes>{});
    return reduce_lanes<Lanes, Half>(a);
  }
}

// Lanes cached values converted to floats in registers: IEEE halves through vcvtph2ps (exact, as HalfToFloat),
// int8 codes times their row's scale (one rounding, as Int8ToFloat).
template <int Lanes>
inline FloatVec<Lanes> load_halves(const std::uint16_t* p) {
  if constexpr (Lanes == 8) {
    return reinterpret_cast<FloatVec<8>>(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  } else {
#ifdef __AVX512F__
    return reinterpret_cast<FloatVec<16>>(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))));
#endif
  }
}
template <int Lanes>
inline FloatVec<Lanes> load_codes(const std::int8_t* p, float scale) {
  if constexpr (Lanes == 8) {
    const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
    return reinterpret_cast<FloatVec<8>>(v) * splat<8>(scale);
  } else {
#ifdef __AVX512F__
    const __m512 v = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
    return reinterpret_cast<FloatVec<16>>(v) * splat<16>(scale);
#endif
  }
}

// One KV head's rows read straight from the cache and converted in registers (positions relative to `first`).
// The few-vectors path uses each cached value once or twice, so converting a chunk into scratch first - a store
// and a reload per value - cost more than the conversion: on the default model it was half of a one-row
// forward's attention. prefetch_ahead(p) asks for the row kPosChunk positions ahead, while that is below `until`.
template <int Lanes, KvCacheType Type>
struct CachedRows {
  static constexpr std::int64_t kValueBytes = kv_value_bytes(Type);
  const char* base;          // value 0 of KV head kvh at position `first`
  std::int64_t stride;       // bytes between consecutive positions
  std::int64_t head_bytes;   // bytes of one head's row
  const float* scales;       // Int8: the scale of (first, kvh); the next position's is n_kv_heads further
  std::int64_t n_kv_heads;
  std::int64_t until;        // prefetch rows only below this (relative) position
  CachedRows(const KvLayerView& kv, std::int64_t first, std::int64_t kvh, std::int64_t n_kv_heads_,
             std::int64_t head_dim, std::int64_t until_, bool keys)
      : stride(kv.row_stride * kValueBytes), head_bytes(head_dim * kValueBytes), n_kv_heads(n_kv_heads_),
        until(until_) {
    base = static_cast<const char*>(keys ? kv.k : kv.v) + first * stride + kvh * head_bytes;
    const float* s = keys ? kv.k_scale : kv.v_scale;
    scales = s ? s + first * n_kv_heads + kvh : nullptr;
  }
  FloatVec<Lanes> load(std::int64_t p, std::int64_t d) const {
    if constexpr (Type == KvCacheType::F16)
      return load_halves<Lanes>(reinterpret_cast<const std::uint16_t*>(base + p * stride) + d);
    else
      return load_codes<Lanes>(reinterpret_cast<const std::int8_t*>(base + p * stride) + d, scales[p * n_kv_heads]);
  }
  void prefetch_ahead(std::int64_t p) const {
    if (p + kPosChunk >= until) return;
    const char* row = base + (p + kPosChunk) * stride;
    for (std::int64_t b = 0; b < head_bytes; b += 64) __builtin_prefetch(row + b);
  }
};

// Scores of one query vector against the keys of positions [0, n_pos) of `keys` (CachedRows; head_dim a
// multiple of Lanes): Lanes positions at a time, each summing its products in its own register
// (independent chains), then reduce_lanes turns the Lanes registers into one register of Lanes scores. out gets
// n_pos rounded up to Lanes values (0 past n_pos). With `prefetch`, asks for the keys one chunk ahead as it goes.
template <int Lanes, class Keys>
inline void row_scores(const float* q, const Keys& keys, std::int64_t n_pos, std::int64_t head_dim, bool prefetch,
                       float* out) {
  using V = FloatVec<Lanes>;
  for (std::int64_t p0 = 0; p0 < n_pos; p0 += Lanes) {
    V a[Lanes];
    const int valid = static_cast<int>(std::min<std::int64_t>(Lanes, n_pos - p0));
    if (prefetch)
      for (int j = 0; j < valid; ++j) keys.prefetch_ahead(p0 + j);
    const V q0 = load<Lanes>(q);
    for (int j = 0; j < Lanes; ++j) a[j] = j < valid ? q0 * keys.load(p0 + j, 0) : V{};
    for (std::int64_t d = Lanes; d < head_dim; d += Lanes) {
      const V qd = load<Lanes>(q + d);
      for (int j = 0; j < valid; ++j) a[j] = fma(qd, keys.load(p0 + j, d), a[j]);
    }
    store<Lanes>(out + p0, reduce_lanes<Lanes>(a));
  }
}

// Largest of w[0..n), n >= 1.
template <int Lanes>
inline float max_of(const float* w, std::int64_t n) {
  using V = FloatVec<Lanes>;
  float m = w[0];
  std::int64_t p = 0;
  if (n >= Lanes) {
    V mv = load<Lanes>(w);
    for (p = Lanes; p + Lanes <= n; p += Lanes) {
      const V x = load<Lanes>(w + p);
      mv = mv > x ? mv : x;
    }
    for (int j = 0; j < Lanes; ++j) m = std::max(m, mv[j]);
  }
  for (; p < n; ++p) m = std::max(m, w[p]);
  return m;
}

// For Vecs query vectors at once, over Blocks registers (Blocks * Lanes values) of the V rows of `v` (CachedRows)
// from value d0: acc_i = acc_i * rescale_i + sum_p w_i[p] * v_p. The accumulators stay in registers across all
// positions (Vecs * Blocks independent chains keep the multiply-add units busy) and each V register loaded serves
// every vector.
template <int Lanes, int Blocks, int Vecs, class Values>
inline void weighted_sums(const float* const* w, const float* rescale, const Values& v, std::int64_t d0,
                          std::int64_t positions, bool prefetch, float* const* acc) {
  using V = FloatVec<Lanes>;
  V r[Vecs][Blocks];
  for (int i = 0; i < Vecs; ++i)
    for (int b = 0; b < Blocks; ++b) r[i][b] = load<Lanes>(acc[i] + b * Lanes) * rescale[i];
  for (std::int64_t p = 0; p < positions; ++p) {
    V wp[Vecs];
    for (int i = 0; i < Vecs; ++i) wp[i] = splat<Lanes>(w[i][p]);
    if (prefetch) v.prefetch_ahead(p);
    for (int b = 0; b < Blocks; ++b) {
      const V vb = v.load(p, d0 + b * Lanes);
      for (int i = 0; i < Vecs; ++i) r[i][b] = fma(wp[i], vb, r[i][b]);
    }
  }
  for (int i = 0; i < Vecs; ++i)
    for (int b = 0; b < Blocks; ++b) store<Lanes>(acc[i] + b * Lanes, r[i][b]);
}

// weighted_sums over the whole head dimension (a multiple of Lanes) for n_vec vectors: pairs of vectors, slices
// of at most kSlice registers (16 + 3 registers in flight on AVX-512's 32, 8 + 3 on AVX2's 16).
template <int Lanes, class Values>
inline void weighted_sums_all(const float* w, std::int64_t w_stride, const float* rescale, std::int64_t n_vec,
                              const Values& v, std::int64_t positions, std::int64_t head_dim, float* acc) {
  constexpr std::int64_t kSlice = Lanes == 16 ? 8 : 4;
  const std::int64_t blocks = head_dim / Lanes;
  for (std::int64_t i = 0; i < n_vec; i += 2) {
    const bool pair = i + 1 < n_vec;
    const float* wi[2] = {w + i * w_stride, w + (i + pair) * w_stride};
    for (std::int64_t b0 = 0; b0 < blocks;) {
      const std::int64_t left = std::min(kSlice, blocks - b0);
      const std::int64_t nb = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
      float* ai[2] = {acc + i * head_dim + b0 * Lanes, acc + (i + pair) * head_dim + b0 * Lanes};
      const std::int64_t d0 = b0 * Lanes;
      auto run = [&]<int Blocks>() {
        const bool prefetch = i == 0 && b0 == 0;   // each V row once
        if (pair) weighted_sums<Lanes, Blocks, 2>(wi, rescale + i, v, d0, positions, prefetch, ai);
        else weighted_sums<Lanes, Blocks, 1>(wi, rescale + i, v, d0, positions, prefetch, ai);
      };
      if (nb == 8) run.template operator()<8>();
      else if (nb == 4) run.template operator()<4>();
      else if (nb == 2) run.template operator()<2>();
      else run.template operator()<1>();
      b0 += nb;
    }
  }
}

// Scores of one query vector against a chunk of kPosChunk keys stored transposed (k_t[d * kPosChunk + p]):
// out[p] = q . k_p, a broadcast of each query element times registers of keys (no horizontal sum).
template <int Lanes>
inline void chunk_scores(const float* q, const float* k_t, std::int64_t head_dim, float* out) {
  using V = FloatVec<Lanes>;
  constexpr int kVecs = static_cast<int>(kPosChunk) / Lanes;
  V acc[kVecs] = {};
  for (std::int64_t d = 0; d < head_dim; ++d) {
    const V qd = splat<Lanes>(q[d]);
    for (int j = 0; j < kVecs; ++j) acc[j] = fma(qd, load<Lanes>(k_t + d * kPosChunk + j * Lanes), acc[j]);
  }
  for (int j = 0; j < kVecs; ++j) store<Lanes>(out + j * Lanes, acc[j]);
}

// acc[0..n) += sum_p w[p] * v[p*n ..]: blocks of four vectors of outputs accumulate in registers over all
// positions before being stored, so the accumulator is not read and written once per position.
template <int Lanes>
inline void weighted_sum(const float* w, const float* v, std::int64_t positions, std::int64_t n, float* acc) {
  using V = FloatVec<Lanes>;
  std::int64_t d = 0;
  for (; d + 4 * Lanes <= n; d += 4 * Lanes) {
    V r0 = load<Lanes>(acc + d), r1 = load<Lanes>(acc + d + Lanes), r2 = load<Lanes>(acc + d + 2 * Lanes),
      r3 = load<Lanes>(acc + d + 3 * Lanes);
    for (std::int64_t p = 0; p < positions; ++p) {
      const float* vp = v + p * n + d;
      const V wp = splat<Lanes>(w[p]);
      r0 = fma(wp, load<Lanes>(vp), r0);
      r1 = fma(wp, load<Lanes>(vp + Lanes), r1);
      r2 = fma(wp, load<Lanes>(vp + 2 * Lanes), r2);
      r3 = fma(wp, load<Lanes>(vp + 3 * Lanes), r3);
    }
    store<Lanes>(acc + d, r0);
    store<Lanes>(acc + d + Lanes, r1);
    store<Lanes>(acc + d + 2 * Lanes, r2);
    store<Lanes>(acc + d + 3 * Lanes, r3);
  }
  for (; d + Lanes <= n; d += Lanes) {
    V r = load<Lanes>(acc + d);
    for (std::int64_t p = 0; p < positions; ++p) r = fma(splat<Lanes>(w[p]), load<Lanes>(v + p * n + d), r);
    store<Lanes>(acc + d, r);
  }
  for (; d < n; ++d) {
    float r = acc[d];
    for (std::int64_t p = 0; p < positions; ++p) r += w[p] * v[p * n + d];
    acc[d] = r;
  }
}

// Running softmax state of one query vector over the positions seen so far: max score, sum of exp(score - max),
// and the exp-weighted sum of V rows (length head_dim, kept by the caller).
struct SoftmaxState {
  float max = -std::numeric_limits<float>::infinity();
  float sum = 0.0f;
};

}  // namespace attention_detail

template <int Lanes, auto HalfToFloat, auto Int8ToFloat, auto ExpShifted>
void attention_kernel(int threads, const float* q, std::int64_t rows, const KvLayerView& kv,
                      const std::int32_t* limit, std::int64_t n_heads, std::int64_t n_kv_heads,
                      std::int64_t head_dim, float* out) {
  using namespace attention_detail;
  validate_kv_view(kv, n_heads, n_kv_heads, head_dim);
  const KvRowReader<HalfToFloat, Int8ToFloat> cached(kv, n_kv_heads, head_dim);
  const std::int64_t group = n_heads / n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const std::int64_t row_blocks = (rows + kRowBlock - 1) / kRowBlock;
  std::int64_t max_limit = 0;
  for (std::int64_t r = 0; r < rows; ++r) max_limit = std::max<std::int64_t>(max_limit, limit[r]);

  // A small attention (few rows, short context) runs on the calling thread: see parallel_for.hpp.
  threads = threads_for_work(rows * max_limit * n_heads * head_dim * 2, threads);
  // Position splits: enough tasks for every thread (dynamic scheduling evens out the rest), each split long enough
  // to pay for merging. Split boundaries are whole chunks.
  const std::int64_t base_tasks = n_kv_heads * row_blocks;
  std::int64_t splits = 1;
  if (threads > 1 && base_tasks < 4 * threads)
    splits = std::clamp<std::int64_t>((4 * threads + base_tasks - 1) / base_tasks, 1,
                                      std::max<std::int64_t>(1, max_limit / kMinSplitPositions));
  const std::int64_t chunks = (max_limit + kPosChunk - 1) / kPosChunk;
  const std::int64_t chunks_per_split = (chunks + splits - 1) / splits;
  const std::int64_t tasks = base_tasks * splits;
  const std::int64_t vectors_per_task = std::min(rows, kRowBlock) * group;

  // With splits, each task leaves its partial states here for the merge; without, tasks write `out` directly.
  // (Not zero-filled: every task initializes its own part. Decoding calls this once per layer per token.)
  std::unique_ptr<SoftmaxState[]> partial_state(splits > 1 ? new SoftmaxState[tasks * vectors_per_task] : nullptr);
  std::unique_ptr<float[]> partial_acc(splits > 1 ? new float[tasks * vectors_per_task * head_dim] : nullptr);

  // One thread's buffers, kept across calls (a forward calls this once per layer).
  const std::int64_t lane_groups = (vectors_per_task + Lanes - 1) / Lanes;
  struct Scratch {
    std::vector<float> k_rows, k_t, v_rows, qt, limits, scores, acc, acc_t, max, sum;
    void size_for(std::int64_t dim, std::int64_t vectors, std::int64_t groups) {
      k_rows.resize(static_cast<std::size_t>(kPosChunk * dim));
      v_rows.resize(k_rows.size());
      k_t.resize(k_rows.size());
      qt.resize(static_cast<std::size_t>(groups * dim * Lanes));
      limits.resize(static_cast<std::size_t>(groups * Lanes));
      scores.resize(static_cast<std::size_t>((kPosChunk + 1) * Lanes));
      acc.resize(static_cast<std::size_t>(vectors * dim));
      acc_t.resize(static_cast<std::size_t>(groups * dim * Lanes));
      max.resize(static_cast<std::size_t>(groups * Lanes));
      sum.resize(max.size());
    }
  };
  // A task's query vectors are processed Lanes at a time, one per SIMD lane ("lane group"): a score is then a
  // broadcast of one key element times a register of query elements, summed over the head dimension, with no
  // horizontal sum, and the softmax state of Lanes vectors moves together.
  auto run_task = [&](Scratch& scratch, std::int64_t task) {
    using V = FloatVec<Lanes>;
    const V minus_inf = splat<Lanes>(-std::numeric_limits<float>::infinity());
    const std::int64_t split = task % splits, base = task / splits;
    const std::int64_t kvh = base % n_kv_heads, block = base / n_kv_heads;
    const std::int64_t r0 = block * kRowBlock, r1 = std::min(rows, r0 + kRowBlock);
    const std::int64_t n_vec = (r1 - r0) * group, n_groups = (n_vec + Lanes - 1) / Lanes;
    const std::int64_t p_begin = split * chunks_per_split * kPosChunk;
    std::int64_t p_end = std::min(max_limit, p_begin + chunks_per_split * kPosChunk);
    std::int64_t block_limit = 0;
    for (std::int64_t r = r0; r < r1; ++r) block_limit = std::max<std::int64_t>(block_limit, limit[r]);
    p_end = std::min(p_end, block_limit);

    // Fewer query vectors than half the lanes (a row or two) take the few-vectors path below, which reads the
    // queries where they are and accumulates per vector into acc; else lane groups accumulate in acc_t, copied to
    // acc at the end.
    const bool lane_groups_used = n_vec * 2 >= Lanes;
    float* acc = splits > 1 ? partial_acc.get() + task * vectors_per_task * head_dim : scratch.acc.data();
    float* acc_t = scratch.acc_t.data();   // lane groups' accumulators, [group][dimension][lane]
    if (lane_groups_used) std::fill(acc_t, acc_t + n_groups * head_dim * Lanes, 0.0f);
    else std::fill(acc, acc + n_vec * head_dim, 0.0f);
    float* qt = scratch.qt.data();
    float* lim = scratch.limits.data();
    float* max = scratch.max.data();
    float* sum = scratch.sum.data();
    // Query vector i: row r0 + i / group, query head kvh * group + i % group (consecutive in memory per row). Its
    // elements go to lane i % Lanes of lane group i / Lanes, pre-scaled; lanes past n_vec stay 0 and see nothing.
    for (std::int64_t i = 0; i < n_groups * Lanes; ++i) {
      const std::int64_t lg = i / Lanes, lane = i % Lanes;
      if (lane_groups_used) {
        const float* qi = q + ((r0 + i / group) * n_heads + kvh * group + i % group) * head_dim;
        for (std::int64_t d = 0; d < head_dim; ++d)
          qt[(lg * head_dim + d) * Lanes + lane] = i < n_vec ? qi[d] * scale : 0.0f;
      } else if (i < n_vec) {   // the few-vectors path reads vector i, pre-scaled, at qt + i * head_dim
        const float* qi = q + ((r0 + i / group) * n_heads + kvh * group + i % group) * head_dim;
        for (std::int64_t d = 0; d < head_dim; ++d) qt[i * head_dim + d] = qi[d] * scale;
      }
      lim[i] = i < n_vec ? static_cast<float>(limit[r0 + i / group]) : 0.0f;
      max[i] = -std::numeric_limits<float>::infinity();
      sum[i] = 0.0f;
    }
    float* k_rows = scratch.k_rows.data();
    float* v_rows = scratch.v_rows.data();
    float* k_t = scratch.k_t.data();      // the few-vectors path's keys, [dimension][position]
    float* w = scratch.scores.data();   // [position][lane], then one row for the rescale factors

    // Few query vectors (decoding a row or two, fewer than half the lanes): each vector's scores come from its dot
    // products with the key rows. Vector i's weights go to w + i * kPosChunk: exp(score - max) for the positions it
    // sees in the chunk, 0 for the rest, so all vectors share one pass over the V rows. `scores(i, wi, seen)`
    // writes vector i's scaled scores of the chunk's first `seen` positions; returns the rescale factors.
    auto few_vectors_softmax = [&](std::int64_t c0, std::int64_t n_pos, auto&& scores) {
      float* rescale = w + n_vec * kPosChunk;
      for (std::int64_t i = 0; i < n_vec; ++i) {
        float* wi = w + i * kPosChunk;
        const std::int64_t seen = std::clamp<std::int64_t>(limit[r0 + i / group] - c0, 0, n_pos);
        rescale[i] = 1.0f;
        if (seen == 0) {
          std::fill(wi, wi + n_pos, 0.0f);
          continue;
        }
        scores(i, wi, seen);
        const float new_max = std::max(max[i], max_of<Lanes>(wi, seen));
        rescale[i] = std::exp(max[i] - new_max);   // 0 on the first chunk (max was -inf)
        sum[i] = sum[i] * rescale[i] + ExpShifted(wi, seen, new_max);
        max[i] = new_max;
        std::fill(wi + seen, wi + n_pos, 0.0f);
      }
      return rescale;
    };
    // With a head dimension of whole registers they read the cache in place, converting in registers (CachedRows).
    auto few_vectors_in_place = [&](std::int64_t c0, std::int64_t n_pos, const auto& keys, const auto& values) {
      const float* rescale = few_vectors_softmax(c0, n_pos, [&](std::int64_t i, float* wi, std::int64_t seen) {
        row_scores<Lanes>(qt + i * head_dim, keys, seen, head_dim, /*prefetch=*/i == 0, wi);
      });
      weighted_sums_all<Lanes>(w, kPosChunk, rescale, n_vec, values, n_pos, head_dim, acc);
    };
    const bool in_place = !lane_groups_used && head_dim % Lanes == 0;

    for (std::int64_t c0 = p_begin; c0 < p_end; c0 += kPosChunk) {
      const std::int64_t n_pos = std::min(kPosChunk, p_end - c0);
      if (in_place) {
        // Rows are prefetched one chunk ahead as they are read: a task walks positions a whole cache row apart (all
        // KV heads lie between), which the hardware prefetchers follow too late.
        const std::int64_t until = p_end - c0;
        auto read = [&]<KvCacheType Type>() {
          few_vectors_in_place(c0, n_pos, CachedRows<Lanes, Type>(kv, c0, kvh, n_kv_heads, head_dim, until, true),
                               CachedRows<Lanes, Type>(kv, c0, kvh, n_kv_heads, head_dim, until, false));
        };
        if (kv.type == KvCacheType::F16) read.template operator()<KvCacheType::F16>();
        else read.template operator()<KvCacheType::Int8>();
        continue;
      }
      // The other paths convert the chunk's rows into scratch once, for all the task's vectors, with the same
      // prefetch after each row read.
      const std::int64_t ahead = std::max<std::int64_t>(0, std::min(n_pos, p_end - c0 - kPosChunk));
      for (std::int64_t p = 0; p < n_pos; ++p) {
        if (p < ahead) cached.prefetch_key(c0 + kPosChunk + p, kvh);
        cached.key(c0 + p, kvh, k_rows + p * head_dim);
      }
      for (std::int64_t p = 0; p < n_pos; ++p) {
        if (p < ahead) cached.prefetch_value(c0 + kPosChunk + p, kvh);
        cached.value(c0 + p, kvh, v_rows + p * head_dim);
      }
      if (!lane_groups_used) {
        // Few vectors and a head dimension that is not whole registers: scores against the keys transposed once
        // per chunk as registers of positions.
        for (std::int64_t p = 0; p < n_pos; ++p)
          for (std::int64_t d = 0; d < head_dim; ++d) k_t[d * kPosChunk + p] = k_rows[p * head_dim + d];
        if (n_pos < kPosChunk)
          for (std::int64_t d = 0; d < head_dim; ++d)
            std::fill(k_t + d * kPosChunk + n_pos, k_t + (d + 1) * kPosChunk, 0.0f);
        const float* rescale = few_vectors_softmax(c0, n_pos, [&](std::int64_t i, float* wi, std::int64_t seen) {
          const float* qi = q + ((r0 + i / group) * n_heads + kvh * group + i % group) * head_dim;
          chunk_scores<Lanes>(qi, k_t, head_dim, wi);
          for (std::int64_t p = 0; p < seen; ++p) wi[p] *= scale;
        });
        for (std::int64_t i = 0; i < n_vec; ++i) {
          float* a = acc + i * head_dim;
          if (rescale[i] != 1.0f)
            for (std::int64_t d = 0; d < head_dim; ++d) a[d] *= rescale[i];
          weighted_sum<Lanes>(w + i * kPosChunk, v_rows, n_pos, head_dim, a);
        }
        continue;
      }
      for (std::int64_t lg = 0; lg < n_groups; ++lg) {
        const float* qg = qt + lg * head_dim * Lanes;
        const V limits_v = load<Lanes>(lim + lg * Lanes);
        // Scores; a position at or past a vector's row limit scores -inf.
        // Eight positions per pass, so each register of query elements is loaded once for eight keys.
        V chunk_max = minus_inf;
        for (std::int64_t p0 = 0; p0 < n_pos; p0 += 8) {
          V a[8] = {};
          const float* k = k_rows + p0 * head_dim;   // rows past n_pos hold older (finite) keys; unused
          for (std::int64_t d = 0; d < head_dim; ++d) {
            const V qd = load<Lanes>(qg + d * Lanes);
            for (int j = 0; j < 8; ++j) a[j] = fma(qd, splat<Lanes>(k[j * head_dim + d]), a[j]);
          }
          for (std::int64_t j = 0; j < 8 && p0 + j < n_pos; ++j) {
            const V score = splat<Lanes>(static_cast<float>(c0 + p0 + j)) < limits_v ? a[j] : minus_inf;
            store<Lanes>(w + (p0 + j) * Lanes, score);
            chunk_max = chunk_max > score ? chunk_max : score;
          }
        }
        // Online softmax: exps relative to the new max (0 where a lane has seen nothing yet, so no inf - inf),
        // and the factor that rescales what the lanes had, exp(old max - new max), computed with them.
        const V old_max = load<Lanes>(max + lg * Lanes);
        const V new_max = old_max > chunk_max ? old_max : chunk_max;
        const V shift = new_max == minus_inf ? V{} : new_max;
        for (std::int64_t p = 0; p < n_pos; ++p) store<Lanes>(w + p * Lanes, load<Lanes>(w + p * Lanes) - shift);
        store<Lanes>(w + n_pos * Lanes, old_max - shift);
        ExpShifted(w, (n_pos + 1) * Lanes, 0.0f);
        V chunk_sum = {};
        for (std::int64_t p = 0; p < n_pos; ++p) {   // exactly 0 where not visible (the exp of -inf is not)
          const V e = splat<Lanes>(static_cast<float>(c0 + p)) < limits_v ? load<Lanes>(w + p * Lanes) : V{};
          store<Lanes>(w + p * Lanes, e);
          chunk_sum += e;
        }
        const V rescale = old_max == minus_inf ? V{} : load<Lanes>(w + n_pos * Lanes);
        store<Lanes>(sum + lg * Lanes, load<Lanes>(sum + lg * Lanes) * rescale + chunk_sum);
        store<Lanes>(max + lg * Lanes, new_max);
        // Weighted V rows, also one vector per lane: acc_t[d] (a register over the lane group) += w[p] * V[p][d],
        // eight dimensions per pass so each weight register is loaded once for eight broadcasts.
        float* at = acc_t + lg * head_dim * Lanes;
        std::int64_t d0 = 0;
        for (; d0 + 8 <= head_dim; d0 += 8) {
          V r[8];
          for (int j = 0; j < 8; ++j) r[j] = load<Lanes>(at + (d0 + j) * Lanes) * rescale;
          for (std::int64_t p = 0; p < n_pos; ++p) {
            const V wp = load<Lanes>(w + p * Lanes);
            const float* vp = v_rows + p * head_dim + d0;
            for (int j = 0; j < 8; ++j) r[j] = fma(wp, splat<Lanes>(vp[j]), r[j]);
          }
          for (int j = 0; j < 8; ++j) store<Lanes>(at + (d0 + j) * Lanes, r[j]);
        }
        for (; d0 < head_dim; ++d0) {
          V r = load<Lanes>(at + d0 * Lanes) * rescale;
          for (std::int64_t p = 0; p < n_pos; ++p)
            r = fma(load<Lanes>(w + p * Lanes), splat<Lanes>(v_rows[p * head_dim + d0]), r);
          store<Lanes>(at + d0 * Lanes, r);
        }
      }
    }
    if (lane_groups_used)   // the lane-group accumulators back to one row of head_dim per vector
      for (std::int64_t i = 0; i < n_vec; ++i)
        for (std::int64_t d = 0; d < head_dim; ++d)
          acc[i * head_dim + d] = acc_t[((i / Lanes) * head_dim + d) * Lanes + i % Lanes];
    if (splits > 1) {
      for (std::int64_t i = 0; i < n_vec; ++i) partial_state[task * vectors_per_task + i] = {max[i], sum[i]};
      return;
    }
    for (std::int64_t i = 0; i < n_vec; ++i) {
      // A row that sees no position (limit 0) gets zeros, as in the reference.
      const float inv = sum[i] > 0.0f ? 1.0f / sum[i] : 0.0f;
      float* o = out + ((r0 + i / group) * n_heads + kvh * group + i % group) * head_dim;
      for (std::int64_t d = 0; d < head_dim; ++d) o[d] = acc[i * head_dim + d] * inv;
    }
  };
  // Merges the splits of one (KV head, row block): rescales every partial to the common max and normalizes.
  auto merge = [&](std::int64_t base) {
    const std::int64_t kvh = base % n_kv_heads, block = base / n_kv_heads;
    const std::int64_t r0 = block * kRowBlock, r1 = std::min(rows, r0 + kRowBlock);
    for (std::int64_t i = 0; i < (r1 - r0) * group; ++i) {
      float merged_max = -std::numeric_limits<float>::infinity();
      for (std::int64_t s = 0; s < splits; ++s)
        merged_max = std::max(merged_max, partial_state[(base * splits + s) * vectors_per_task + i].max);
      float* o = out + ((r0 + i / group) * n_heads + kvh * group + i % group) * head_dim;
      std::fill(o, o + head_dim, 0.0f);
      float sum = 0.0f;
      for (std::int64_t s = 0; s < splits; ++s) {
        const std::int64_t t = base * splits + s;
        const SoftmaxState& st = partial_state[t * vectors_per_task + i];
        if (st.sum == 0.0f) continue;   // this split saw none of the row's positions
        const float factor = std::exp(st.max - merged_max);
        sum += st.sum * factor;
        const float* a = partial_acc.get() + (t * vectors_per_task + i) * head_dim;
        for (std::int64_t d = 0; d < head_dim; ++d) o[d] += a[d] * factor;
      }
      const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
      for (std::int64_t d = 0; d < head_dim; ++d) o[d] *= inv;
    }
  };

  if (threads <= 1 || tasks <= 1) {   // then splits == 1: every task writes `out` itself
    thread_local Scratch scratch;
    scratch.size_for(head_dim, vectors_per_task, lane_groups);
    for (std::int64_t task = 0; task < tasks; ++task) run_task(scratch, task);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    thread_local Scratch scratch;
    scratch.size_for(head_dim, vectors_per_task, lane_groups);
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t task = 0; task < tasks; ++task) run_task(scratch, task);
    if (splits > 1) {
#pragma omp for schedule(static)
      for (std::int64_t base = 0; base < base_tasks; ++base) merge(base);
    }
  }
}

}  // namespace bitrun
