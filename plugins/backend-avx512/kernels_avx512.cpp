// AVX-512 kernels (BW/VL + VNNI). Compiled with -mavx512*; only reached after the descriptor's score said the CPU
// has every required feature.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend_common/attention_kernel.hpp"
#include "bitrun/plugin/backend.hpp"
#include "bitrun/base/error.hpp"
#include "backend_common/packed_matmul.hpp"
#include "backend_common/q6k_matmul.hpp"
#include "elementwise_avx512.hpp"

namespace bitrun::avx512 {
namespace {

// The vector operations of packed_matmul.hpp's interleaved matmul: 16 rows per group. vpdpbusd multiplies
// unsigned weight bytes (codes 0..2, or int8 weights + 128) with the signed activation bytes broadcast from
// memory and accumulates straight into int32: no intermediate int16 that could overflow.
struct Avx512Traits {
  static constexpr std::int64_t kLanes = 16;
  static constexpr int kGroupTile = 2, kTokenTile = 8;   // 16 of the 32 registers accumulate
  static constexpr int kOneTokenGroupTile = 4, kTwoTokenGroupTile = 4;   // decode: four weight streams in flight
  static constexpr bool kNarrowSums = false;      // vpdpbusd accumulates in int32 already
  static constexpr std::int32_t kInt8Offset = 128;
  using Int = __m512i;
  using Float = __m512;
  static Int zero() { return _mm512_setzero_si512(); }
  static Int load(const std::uint8_t* p) { return _mm512_load_si512(p); }
  static Int field(Int chunk, int shift) {
    return _mm512_and_si512(_mm512_srli_epi16(chunk, static_cast<unsigned>(shift)), _mm512_set1_epi8(3));
  }
  template <bool Int8>
  static Int dot(Int acc, Int w, const std::int8_t* a) {
    std::int32_t a4;
    std::memcpy(&a4, a, 4);
    return _mm512_dpbusd_epi32(acc, w, _mm512_set1_epi32(a4));
  }
  static Int widen(Int acc, Int sums) { return _mm512_add_epi32(acc, sums); }
  // Q6_K (q6k_interleaved.hpp): the q6 values are unsigned 0..63, so vpdpbusd takes them as they are.
  static constexpr int kQ6TokenTile = 8;
  static Int q6_weights(Int low, Int high, int quad) {
    const int low_shift = 4 * (quad / 32), high_field = 2 * (quad / 16);
    const Int lo = low_shift ? _mm512_srli_epi16(low, 4) : low;
    const Int hi = high_field <= 4 ? _mm512_slli_epi16(high, static_cast<unsigned>(4 - high_field))
                                   : _mm512_srli_epi16(high, static_cast<unsigned>(high_field - 4));
    // (hi & 0x30) | (lo & 0x0f): 0xF8 is A | (B & C) for A = hi & 0x30, B = lo, C = 0x0f.
    return _mm512_ternarylogic_epi32(_mm512_and_si512(hi, _mm512_set1_epi8(0x30)), lo, _mm512_set1_epi8(0x0f), 0xF8);
  }
  static Int q6_dot(Int acc, Int w, const std::int8_t* a) { return dot<false>(acc, w, a); }
  static Int load_scales(const std::int8_t* p) {
    return _mm512_cvtepi8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static Int set1(std::int32_t v) { return _mm512_set1_epi32(v); }
  static Int mullo(Int a, Int b) { return _mm512_mullo_epi32(a, b); }
  static Int add32(Int a, Int b) { return _mm512_add_epi32(a, b); }
  static Float to_float(Int v) { return _mm512_cvtepi32_ps(v); }
  static Float mul_scalar(Float a, float s) { return _mm512_mul_ps(a, _mm512_set1_ps(s)); }
  static Float scaled(Int dot, std::int32_t offset, float scale) {
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(dot, _mm512_set1_epi32(offset))), _mm512_set1_ps(scale));
  }
  static Float add(Float a, Float b) { return _mm512_add_ps(a, b); }
  static Float mul(Float a, const float* v) { return _mm512_mul_ps(a, _mm512_loadu_ps(v)); }
  static void store(float* y, Float v, std::int64_t lanes) {
    if (lanes >= 16) {
      _mm512_storeu_ps(y, v);
    } else {
      _mm512_mask_storeu_ps(y, static_cast<__mmask16>((1u << lanes) - 1), v);
    }
  }
};

class PackedAvx512 final : public PackedMatrix {
 public:
  PackedAvx512(std::int64_t rows, std::int64_t cols) : PackedMatrix(rows, cols) {}
  std::size_t bytes() const override { return m.bytes(); }
  InterleavedMatrix m;
};

class PackedQ6kAvx512 final : public PackedMatrix {
 public:
  PackedQ6kAvx512(std::int64_t rows, std::int64_t cols) : PackedMatrix(rows, cols) {}
  std::size_t bytes() const override { return m.data.size(); }
  Q6kInterleavedMatrix m;
};

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
    auto packed = std::make_unique<PackedAvx512>(w.rows, w.cols);
    pack_interleaved(w, Avx512Traits::kLanes, false, 0, threads(), packed->m);
    return packed;
  }

  void ternary_matmul(const PackedMatrix& w, const QuantizedActivations& x, float* y,
                      std::int64_t y_stride) const override {
    const auto* p = dynamic_cast<const PackedAvx512*>(&w);
    if (!p || p->m.int8) throw Error("ternary_matmul: matrix was not packed by this backend's pack_ternary");
    if (x.cols != w.cols()) throw Error("ternary_matmul: activation width does not match the matrix");
    interleaved_matmul<Avx512Traits>(p->m, x, y, y_stride, threads());
  }

  std::unique_ptr<PackedMatrix> pack_int8(const TernaryMatrixView& w) const override {
    if (!w.valid()) throw Error("pack_int8: empty or incomplete matrix");
    auto packed = std::make_unique<PackedAvx512>(w.rows, w.cols);
    pack_interleaved(w, Avx512Traits::kLanes, true, Avx512Traits::kInt8Offset, threads(), packed->m);
    return packed;
  }

  void int8_matmul(const PackedMatrix& w, const QuantizedActivations& x, float* y,
                   std::int64_t y_stride) const override {
    const auto* p = dynamic_cast<const PackedAvx512*>(&w);
    if (!p || !p->m.int8) throw Error("int8_matmul: matrix was not packed by this backend's pack_int8");
    if (x.cols != w.cols()) throw Error("int8_matmul: activation width does not match the matrix");
    interleaved_matmul<Avx512Traits>(p->m, x, y, y_stride, threads());
  }

  std::unique_ptr<PackedMatrix> pack_q6_k(const Q6kMatrixView& w) const override {
    auto packed = std::make_unique<PackedQ6kAvx512>(w.rows, w.cols);
    pack_q6k_interleaved(w, Avx512Traits::kLanes, threads(), packed->m);
    return packed;
  }

  void q6_k_matmul(const PackedMatrix& w, const QuantizedActivations& x, float* y,
                   std::int64_t y_stride) const override {
    const auto* p = dynamic_cast<const PackedQ6kAvx512*>(&w);
    if (!p) throw Error("q6_k_matmul: matrix was not packed by this backend's pack_q6_k");
    check_q6_k_activations(w, x);
    q6k_interleaved_matmul<Avx512Traits>(p->m, x, y, y_stride, threads());
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
    avx512::rms_norm(x, weight, rows, cols, eps, y);
  }
};

}  // namespace

std::unique_ptr<Backend> make_backend(const BackendOptions& options) {
  return std::make_unique<Avx512Backend>(options);
}

}  // namespace bitrun::avx512
