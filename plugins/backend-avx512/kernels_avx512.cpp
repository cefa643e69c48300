// AVX-512 kernels (BW/VL + VNNI). Compiled with -mavx512*; only reached after the descriptor's score said the CPU
// has every required feature.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "bitrun/attention_kernel.hpp"
#include "bitrun/backend.hpp"
#include "bitrun/error.hpp"
#include "bitrun/packed_matmul.hpp"
#include "bitrun/ternary_pack.hpp"
#include "elementwise_avx512.hpp"

namespace bitrun::avx512 {
namespace {

constexpr std::int64_t kGroupBytes = 64;                 // one __m512i of codes per group
constexpr std::int64_t kBlockWeights = 4 * kGroupBytes;  // 256 weights per packed block
constexpr int kTokenTile = 4;                            // tokens sharing one decode of the weight codes

class PackedAvx512 final : public PackedMatrix {
 public:
  PackedAvx512(std::int64_t rows, std::int64_t cols, bool is_int8) : PackedMatrix(rows, cols), int8(is_int8) {}
  std::size_t bytes() const override { return data.size() + row_scale.size() * sizeof(float); }
  const bool int8;   // pack_int8 rows (one byte per weight) rather than 2-bit ternary codes
  std::int64_t row_bytes = 0;
  AlignedVector<std::uint8_t> data;
  const std::uint8_t* row(std::int64_t m) const { return data.data() + m * row_bytes; }
  std::vector<float> row_scale;
};

// Dot products of one packed weight row with NT token rows. vpdpbusd multiplies unsigned codes (0..2) with signed
// activations and accumulates straight into int32: no intermediate int16 that could overflow.
template <int NT>
inline void row_dots(const std::uint8_t* w, std::int64_t blocks, const std::int8_t* const* q, std::int32_t* out) {
  const __m512i mask = _mm512_set1_epi8(3);
  __m512i acc[NT];
  for (int j = 0; j < NT; ++j) acc[j] = _mm512_setzero_si512();
  for (std::int64_t blk = 0; blk < blocks; ++blk) {
    const __m512i packed = _mm512_load_si512(w + blk * kGroupBytes);
    for (int g = 0; g < 4; ++g) {
      const __m512i codes = _mm512_and_si512(_mm512_srli_epi16(packed, 2 * g), mask);
      const std::int64_t k = blk * kBlockWeights + g * kGroupBytes;
      for (int j = 0; j < NT; ++j) acc[j] = _mm512_dpbusd_epi32(acc[j], codes, _mm512_load_si512(q[j] + k));
    }
  }
  for (int j = 0; j < NT; ++j) out[j] = _mm512_reduce_add_epi32(acc[j]);
}

// The sums of 16 int32 vectors, in order, in one vector: a transpose tree of about 45 instructions where 16
// separate reductions take about 130.
inline __m512i reduce16(const __m512i* v) {
  __m512i u[8], w[4];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i)   // per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3]
    u[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i)   // per 128-bit lane: the lane's part of the sums of v[4i .. 4i+3]
    w[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(u[2 * i], u[2 * i + 1]), _mm512_unpackhi_epi64(u[2 * i], u[2 * i + 1]));
  // Add the four 128-bit lanes: pairs of lanes first, then the pairs.
  const __m512i x0 = _mm512_add_epi32(_mm512_shuffle_i32x4(w[0], w[1], 0x88), _mm512_shuffle_i32x4(w[0], w[1], 0xDD));
  const __m512i x1 = _mm512_add_epi32(_mm512_shuffle_i32x4(w[2], w[3], 0x88), _mm512_shuffle_i32x4(w[2], w[3], 0xDD));
  return _mm512_add_epi32(_mm512_shuffle_i32x4(x0, x1, 0x88), _mm512_shuffle_i32x4(x0, x1, 0xDD));
}

// The integer dots of an R x T tile (R * T == 16; lane R * j + r holds row r with token j) over rows of `cols`
// weights, as one reduce16. The loop runs over the fields of 64 weights that hold weights, so a short row's padding
// (the rest of its last block, where the activations are zero) is skipped; its body has constant bounds, so the 16
// accumulators stay in registers.
// Int8: the rows are pack_int8's bytes (64 weights per field, stored + 128) instead of 2-bit codes.
template <int R, int T, bool Int8>
__attribute__((always_inline)) inline __m512i tile_dots(const std::uint8_t* const* w, std::int64_t cols,
                                                        const std::int8_t* const* q) {
  static_assert(R * T == 16);
  __m512i acc[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_setzero_si512();
  const std::int64_t fields = (cols + kGroupBytes - 1) / kGroupBytes;
  const __m512i mask = _mm512_set1_epi8(3);
  for (std::int64_t f = 0; f < fields; ++f) {
    const std::int64_t block_offset = f / 4 * kGroupBytes;
    const __m128i shift = _mm_cvtsi32_si128(static_cast<int>(2 * (f % 4)));
    __m512i a[T];
#pragma GCC unroll 16
    for (int j = 0; j < T; ++j) a[j] = _mm512_load_si512(q[j] + f * kGroupBytes);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512i codes =
          Int8 ? _mm512_load_si512(w[r] + f * kGroupBytes)
               : _mm512_and_si512(_mm512_srl_epi16(_mm512_load_si512(w[r] + block_offset), shift), mask);
#pragma GCC unroll 16
      for (int j = 0; j < T; ++j) acc[R * j + r] = _mm512_dpbusd_epi32(acc[R * j + r], codes, a[j]);
    }
  }
  return reduce16(acc);
}

// A 4-row x 4-token tile (packed_rows_tile, one activation scale per token): each row's codes are decoded once
// per field for the four tokens, each token's activations loaded once per field for the four rows; lane 4 * j + r
// of the sums is token j, row r, and the float side runs on all 16 lanes at once.
template <bool Int8>
__attribute__((always_inline)) inline void rows_tile_4x4(const std::uint8_t* const* w, std::int64_t cols,
                                                         const std::int8_t* const* q,
                          const std::int32_t* sum, const float* scale, const float* row_scale, float* y,
                          std::int64_t y_stride) {
  const __m512i dots = tile_dots<4, 4, Int8>(w, cols, q);
  const __m512i token_of_lane = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  const __m512i sums = _mm512_slli_epi32(
      _mm512_permutexvar_epi32(token_of_lane,
                               _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sum)))),
      Int8 ? 7 : 0);   // the offset's multiple of the activation sum: 128 for int8 rows, 1 for codes
  const __m512 scales = _mm512_permutexvar_ps(token_of_lane, _mm512_castps128_ps512(_mm_loadu_ps(scale)));
  const __m512 row_scales = _mm512_broadcast_f32x4(_mm_loadu_ps(row_scale));
  const __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(dots, sums)), scales), row_scales);
  _mm_storeu_ps(y, _mm512_castps512_ps128(v));
  _mm_storeu_ps(y + y_stride, _mm512_extractf32x4_ps(v, 1));
  _mm_storeu_ps(y + 2 * y_stride, _mm512_extractf32x4_ps(v, 2));
  _mm_storeu_ps(y + 3 * y_stride, _mm512_extractf32x4_ps(v, 3));
}

// A 16-row x 1-token tile (a decode step, or the tokens left after the 4-token tiles): one activation load per
// field for 16 rows, and 16 contiguous outputs.
template <bool Int8>
inline void rows_tile_16x1(const std::uint8_t* const* w, std::int64_t cols, const std::int8_t* const* q,
                           const std::int32_t* sum, const float* scale, const float* row_scale, float* y,
                           std::int64_t /*y_stride*/) {
  const __m512i dots = tile_dots<16, 1, Int8>(w, cols, q);
  const auto offset_sum = static_cast<std::int32_t>(static_cast<std::uint32_t>(sum[0]) * (Int8 ? 128u : 1u));
  const __m512 v = _mm512_mul_ps(
      _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(dots, _mm512_set1_epi32(offset_sum))), _mm512_set1_ps(scale[0])),
      _mm512_loadu_ps(row_scale));
  _mm512_storeu_ps(y, v);
}

// Dot products of one int8 weight row (blocks of 64, stored as w + 128 so vpdpbusd sees unsigned bytes) with NT
// token rows; the caller subtracts 128 * sum(a).
template <int NT>
inline void int8_row_dots(const std::uint8_t* w, std::int64_t blocks, const std::int8_t* const* q, std::int32_t* out) {
  __m512i acc[NT];
  for (int j = 0; j < NT; ++j) acc[j] = _mm512_setzero_si512();
  for (std::int64_t blk = 0; blk < blocks; ++blk) {
    const __m512i wv = _mm512_load_si512(w + blk * 64);
    for (int j = 0; j < NT; ++j) acc[j] = _mm512_dpbusd_epi32(acc[j], wv, _mm512_load_si512(q[j] + blk * 64));
  }
  for (int j = 0; j < NT; ++j) out[j] = _mm512_reduce_add_epi32(acc[j]);
}

// IEEE half -> float, exact (as the reference's table).
inline void half_to_float(const std::uint16_t* src, std::int64_t n, float* dst) {
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
  for (; i < n; ++i) dst[i] = _cvtsh_ss(src[i]);
}

// int8 KV codes -> float: exact widening, then one multiply by the row's scale (as the reference).
inline void int8_to_float(const std::int8_t* src, float scale, std::int64_t n, float* dst) {
  const __m512 vscale = _mm512_set1_ps(scale);
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i codes = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
    _mm512_storeu_ps(dst + i, _mm512_mul_ps(_mm512_cvtepi32_ps(codes), vscale));
  }
  for (; i < n; ++i) dst[i] = static_cast<float>(src[i]) * scale;
}

// Quantizes n floats with one absmax scale (the reference's arithmetic, bit for bit).
void quantize_span(const float* x, std::int64_t n, std::int8_t* q, float& scale, std::int32_t& sum_out) {
  auto lanes_at = [n](std::int64_t k) {
    return n - k >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (n - k)) - 1);
  };
  __m512 vmax = _mm512_setzero_ps();
  for (std::int64_t k = 0; k < n; k += 16) vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_maskz_loadu_ps(lanes_at(k), x + k)));
  const float absmax = std::max(_mm512_reduce_max_ps(vmax), 1e-5f);
  const __m512 vinv = _mm512_set1_ps(127.0f / absmax);
  __m512i vsum = _mm512_setzero_si512();
  for (std::int64_t k = 0; k < n; k += 16) {
    // cvtps rounds half to even, as the reference's nearbyint does; masked-off lanes load 0.
    const __mmask16 lanes = lanes_at(k);
    const __m512i i = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(lanes, x + k), vinv));
    vsum = _mm512_add_epi32(vsum, i);
    _mm_mask_storeu_epi8(q + k, lanes, _mm512_cvtsepi32_epi8(i));
  }
  scale = absmax / 127.0f;
  sum_out = _mm512_reduce_add_epi32(vsum);
}

class Avx512Backend final : public Backend {
 public:
  explicit Avx512Backend(const BackendOptions& options) : Backend("avx512", options) {}

  void quantize_group(const float* x, std::int64_t n, std::int8_t* q, float& scale,
                      std::int32_t& sum) const override {
    quantize_span(x, n, q, scale, sum);
  }

  std::unique_ptr<PackedMatrix> pack_ternary(const TernaryMatrixView& w) const override {
    if (!w.valid()) throw Error("pack_ternary: empty or incomplete matrix");
    auto packed = std::make_unique<PackedAvx512>(w.rows, w.cols, false);
    packed->row_bytes = packed_row_bytes_2bit(w.cols, kGroupBytes);
    packed->data.resize(static_cast<std::size_t>(packed->row_bytes * w.rows));
    packed->row_scale.assign(w.row_scale, w.row_scale + w.rows);
    for_each_row_parallel(w.rows, w.cols, threads(), [&](std::int64_t m, std::int8_t* buffer) {
      pack_view_row_2bit(w, m, kGroupBytes, buffer, packed->data.data() + m * packed->row_bytes);
    });
    return packed;
  }

  void ternary_matmul(const PackedMatrix& w, const QuantizedActivations& x, float* y,
                      std::int64_t y_stride) const override {
    const auto* p = dynamic_cast<const PackedAvx512*>(&w);
    if (!p || p->int8) throw Error("ternary_matmul: matrix was not packed by this backend's pack_ternary");
    if (x.cols != w.cols()) throw Error("ternary_matmul: activation width does not match the matrix");
    const std::int64_t blocks = p->row_bytes / kGroupBytes;
    packed_matmul<kTokenTile, row_dots<kTokenTile>, row_dots<1>, kBlockWeights, kGroupBytes, 1, rows_tile_4x4<false>,
                  rows_tile_16x1<false>>(
        *p, blocks, x, y, y_stride, threads());
  }

  std::unique_ptr<PackedMatrix> pack_int8(const TernaryMatrixView& w) const override {
    if (!w.valid()) throw Error("pack_int8: empty or incomplete matrix");
    auto packed = std::make_unique<PackedAvx512>(w.rows, w.cols, true);
    packed->row_bytes = (w.cols + 63) / 64 * 64;
    // Padding stores 128 (weight 0) and meets zero activations, so it adds nothing; every weight is stored + 128.
    packed->data.assign(static_cast<std::size_t>(packed->row_bytes * w.rows), 128);
    packed->row_scale.assign(w.row_scale, w.row_scale + w.rows);
    for_each_row_parallel(w.rows, w.cols, threads(), [&](std::int64_t m, std::int8_t* buffer) {
      const std::int8_t* src = w.row(m, buffer);
      std::uint8_t* dst = packed->data.data() + m * packed->row_bytes;
      for (std::int64_t k = 0; k < w.cols; ++k) dst[k] = static_cast<std::uint8_t>(src[k] + 128);
    });
    return packed;
  }

  void int8_matmul(const PackedMatrix& w, const QuantizedActivations& x, float* y,
                   std::int64_t y_stride) const override {
    const auto* p = dynamic_cast<const PackedAvx512*>(&w);
    if (!p || !p->int8) throw Error("int8_matmul: matrix was not packed by this backend's pack_int8");
    if (x.cols != w.cols()) throw Error("int8_matmul: activation width does not match the matrix");
    const std::int64_t blocks = p->row_bytes / 64;
    packed_matmul<kTokenTile, int8_row_dots<kTokenTile>, int8_row_dots<1>, 64, 64, 128, rows_tile_4x4<true>,
                  rows_tile_16x1<true>>(
        *p, blocks, x, y, y_stride, threads());
  }

  void attention(const float* q, std::int64_t rows, const KvLayerView& kv, const std::int32_t* limit,
                 std::int64_t n_heads, std::int64_t n_kv_heads, std::int64_t head_dim, float* out) const override {
    attention_kernel<16, half_to_float, int8_to_float, avx512::exp_shifted>(threads(), q, rows, kv, limit, n_heads,
                                                                        n_kv_heads, head_dim, out);
  }

  void gated_activation(float* gate, const float* up, std::int64_t n, bool relu_squared) const override {
    avx512::gated_activation(threads(), gate, up, n, relu_squared);
  }

  void rope(float* x, std::int64_t rows, std::int64_t n_heads, std::int64_t head_dim, std::int64_t rope_dims,
            const std::int32_t* positions, float freq_base, bool neox) const override {
    avx512::rope(threads(), x, rows, n_heads, head_dim, rope_dims, positions, freq_base, neox);
  }

  void rms_norm(const float* x, const float* weight, std::int64_t rows, std::int64_t cols, float eps,
                float* y) const override {
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * cols;
      float* yr = y + r * cols;
      __m512 acc = _mm512_setzero_ps();
      for (std::int64_t k = 0; k < cols; k += 16) {
        const __mmask16 lanes =
            cols - k >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (cols - k)) - 1);
        const __m512 v = _mm512_maskz_loadu_ps(lanes, xr + k);
        acc = _mm512_fmadd_ps(v, v, acc);
      }
      const float inv_rms = 1.0f / std::sqrt(_mm512_reduce_add_ps(acc) / static_cast<float>(cols) + eps);
      const __m512 vinv = _mm512_set1_ps(inv_rms);
      for (std::int64_t k = 0; k < cols; k += 16) {
        const __mmask16 lanes =
            cols - k >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (cols - k)) - 1);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes, xr + k), vinv);
        if (weight) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(lanes, weight + k));
        _mm512_mask_storeu_ps(yr + k, lanes, v);
      }
    }
  }
};

}  // namespace

std::unique_ptr<Backend> make_backend(const BackendOptions& options) {
  return std::make_unique<Avx512Backend>(options);
}

}  // namespace bitrun::avx512
