// AVX2 kernels. Compiled with -mavx2 -mfma -mf16c; only reached after the descriptor's score said the CPU has them.
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
#include "avx2_vectors.hpp"
#include "elementwise_avx2.hpp"
#include "matmul_avx_vnni.hpp"

namespace bitrun::avx2 {
namespace {

inline std::int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

// packed_matmul.hpp's interleaved matmul on plain AVX2: vpmaddubsw multiplies unsigned bytes with signed ones into
// int16 pair sums. Ternary codes (0..2) are unsigned already and a pair sums to at most 2 * 2 * 127 = 508, so a
// 128-weight block's 32 products per lane add up in int16 (at most 16256) and vpmaddwd widens them once per block.
// int8 weights are stored as they are and multiplied as |w| times sign(w) * a, whose pairs reach 2 * 127 * 127 and
// are widened at once.
struct Avx2Traits : Avx2Vectors {
  // 16 registers: 6 int16 sums and the operands (tiles of 2 groups x 4 tokens spilled and ran slower).
  static constexpr int kGroupTile = 1, kTokenTile = 6;
  static constexpr bool kNarrowSums = true;
  static constexpr std::int32_t kInt8Offset = 0;
  template <bool Int8>
  static Int dot(Int acc, Int w, const std::int8_t* a) {
    const __m256i av = broadcast4(a);
    if constexpr (Int8) {
      return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(av, w)),
                                                     _mm256_set1_epi16(1)));
    }
    __m256i sums = _mm256_add_epi16(acc, _mm256_maddubs_epi16(w, av));
    // Keeps the running sum a chain: GCC otherwise reassociates a block's 32 integer adds into a tree after
    // computing every product, which spills them all (16 vector registers) and ran 30% slower.
    asm("" : "+x"(sums));
    return sums;
  }
  static Int widen(Int acc, Int sums) { return _mm256_add_epi32(acc, _mm256_madd_epi16(sums, _mm256_set1_epi16(1))); }
  // Q6_K (q6k_interleaved.hpp): unsigned q6 values (0..63) times activations pair up to 2 * 63 * 127 in int16, and
  // vpmaddwd widens each product's pairs at once. 4 tokens: 12 registers of sums, the rest operands.
  static constexpr int kQ6TokenTile = 4;
  static Int q6_weights(Int low, Int high, int quad) {
    const int low_shift = 4 * (quad / 32), high_field = 2 * (quad / 16);
    const Int lo = low_shift ? _mm256_srli_epi16(low, 4) : low;
    const Int hi = high_field <= 4 ? _mm256_slli_epi16(high, 4 - high_field) : _mm256_srli_epi16(high, high_field - 4);
    return _mm256_or_si256(_mm256_and_si256(hi, _mm256_set1_epi8(0x30)), _mm256_and_si256(lo, _mm256_set1_epi8(0x0f)));
  }
  static Int q6_dot(Int acc, Int w, const std::int8_t* a) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, broadcast4(a)), _mm256_set1_epi16(1)));
  }
  static Int load_scales(const std::int8_t* p) {
    return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  }
  static Int set1(std::int32_t v) { return _mm256_set1_epi32(v); }
  static Int mullo(Int a, Int b) { return _mm256_mullo_epi32(a, b); }
  static Int add32(Int a, Int b) { return _mm256_add_epi32(a, b); }
  static Float to_float(Int v) { return _mm256_cvtepi32_ps(v); }
  static Float mul_scalar(Float a, float s) { return _mm256_mul_ps(a, _mm256_set1_ps(s)); }
};

class PackedAvx2 final : public PackedMatrix {
 public:
  PackedAvx2(std::int64_t rows, std::int64_t cols) : PackedMatrix(rows, cols) {}
  std::size_t bytes() const override { return m.bytes(); }
  InterleavedMatrix m;
};

class PackedQ6kAvx2 final : public PackedMatrix {
 public:
  PackedQ6kAvx2(std::int64_t rows, std::int64_t cols) : PackedMatrix(rows, cols) {}
  std::size_t bytes() const override { return m.data.size(); }
  Q6kInterleavedMatrix m;
};

// IEEE half -> float with F16C, exact (as the reference's table).
inline void half_to_float(const std::uint16_t* src, std::int64_t n, float* dst) {
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (; i < n; ++i) dst[i] = _cvtsh_ss(src[i]);
}

// int8 KV codes -> float: exact widening, then one multiply by the row's scale (as the reference).
inline void int8_to_float(const std::int8_t* src, float scale, std::int64_t n, float* dst) {
  const __m256 vscale = _mm256_set1_ps(scale);
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i codes = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + i)));
    _mm256_storeu_ps(dst + i, _mm256_mul_ps(_mm256_cvtepi32_ps(codes), vscale));
  }
  for (; i < n; ++i) dst[i] = static_cast<float>(src[i]) * scale;
}

// Quantizes n floats with one absmax scale (the reference's arithmetic, bit for bit).
void quantize_span(const float* x, std::int64_t n, std::int8_t* q, float& scale, std::int32_t& sum_out) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 vmax = _mm256_setzero_ps();
  std::int64_t k = 0;
  for (; k + 8 <= n; k += 8) vmax = _mm256_max_ps(vmax, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  float absmax = _mm_cvtss_f32(m4);
  for (; k < n; ++k) absmax = std::max(absmax, std::fabs(x[k]));
  absmax = std::max(absmax, 1e-5f);
  const float inv = 127.0f / absmax;
  const __m256 vinv = _mm256_set1_ps(inv);
  __m256i vsum = _mm256_setzero_si256();
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  k = 0;
  for (; k + 32 <= n; k += 32) {
    // cvtps rounds half to even, as the reference's nearbyint does.
    __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + k), vinv));
    __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + k + 8), vinv));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + k + 16), vinv));
    __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + k + 24), vinv));
    vsum = _mm256_add_epi32(vsum, _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
    __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + k), _mm256_permutevar8x32_epi32(packed, order));
  }
  std::int32_t sum = hsum_epi32(vsum);
  for (; k < n; ++k) {
    float v = std::clamp(std::nearbyint(x[k] * inv), -127.0f, 127.0f);
    q[k] = static_cast<std::int8_t>(v);
    sum += q[k];
  }
  scale = absmax / 127.0f;
  sum_out = sum;
}

class Avx2Backend final : public Backend {
 public:
  explicit Avx2Backend(const BackendOptions& options)
      : Backend("avx2", options), vnni_(options.cpu.has(CpuFeature::AVX_VNNI)) {}

  void quantize_group(const float* x, std::int64_t n, std::int8_t* q, float& scale,
                      std::int32_t& sum) const override {
    quantize_span(x, n, q, scale, sum);
  }

  std::unique_ptr<PackedMatrix> pack_ternary(const TernaryMatrixView& w) const override {
    if (!w.valid()) throw Error("pack_ternary: empty or incomplete matrix");
    auto packed = std::make_unique<PackedAvx2>(w.rows, w.cols);
    pack_interleaved(w, Avx2Traits::kLanes, false, 0, threads(), packed->m);
    return packed;
  }

  void ternary_matmul(const PackedMatrix& w, const QuantizedActivations& x, float* y,
                      std::int64_t y_stride) const override {
    const auto* p = dynamic_cast<const PackedAvx2*>(&w);
    if (!p || p->m.int8) throw Error("ternary_matmul: matrix was not packed by this backend's pack_ternary");
    if (x.cols != w.cols()) throw Error("ternary_matmul: activation width does not match the matrix");
    matmul(p->m, x, y, y_stride);
  }

  std::unique_ptr<PackedMatrix> pack_int8(const TernaryMatrixView& w) const override {
    if (!w.valid()) throw Error("pack_int8: empty or incomplete matrix");
    auto packed = std::make_unique<PackedAvx2>(w.rows, w.cols);
    pack_interleaved(w, Avx2Traits::kLanes, true, Avx2Traits::kInt8Offset, threads(), packed->m);
    return packed;
  }

  void int8_matmul(const PackedMatrix& w, const QuantizedActivations& x, float* y,
                   std::int64_t y_stride) const override {
    const auto* p = dynamic_cast<const PackedAvx2*>(&w);
    if (!p || !p->m.int8) throw Error("int8_matmul: matrix was not packed by this backend's pack_int8");
    if (x.cols != w.cols()) throw Error("int8_matmul: activation width does not match the matrix");
    matmul(p->m, x, y, y_stride);
  }

  std::unique_ptr<PackedMatrix> pack_q6_k(const Q6kMatrixView& w) const override {
    auto packed = std::make_unique<PackedQ6kAvx2>(w.rows, w.cols);
    pack_q6k_interleaved(w, Avx2Traits::kLanes, threads(), packed->m);
    return packed;
  }

  void q6_k_matmul(const PackedMatrix& w, const QuantizedActivations& x, float* y,
                   std::int64_t y_stride) const override {
    const auto* p = dynamic_cast<const PackedQ6kAvx2*>(&w);
    if (!p) throw Error("q6_k_matmul: matrix was not packed by this backend's pack_q6_k");
    check_q6_k_activations(w, x);
    q6k_interleaved_matmul<Avx2Traits>(p->m, x, y, y_stride, threads());
  }

  void attention(const float* q, std::int64_t rows, const KvLayerView& kv, const std::int32_t* limit,
                 std::int64_t n_heads, std::int64_t n_kv_heads, std::int64_t head_dim, float* out) const override {
    attention_kernel<8, half_to_float, int8_to_float, avx2::exp_shifted>(threads(), q, rows, kv, limit, n_heads,
                                                                        n_kv_heads, head_dim, out);
  }

  void gated_activation(float* gate, const float* up, std::int64_t n, bool relu_squared) const override {
    avx2::gated_activation(threads(), gate, up, n, relu_squared);
  }

  void rope(float* x, std::int64_t rows, std::int64_t n_heads, std::int64_t head_dim, std::int64_t rope_dims,
            const std::int32_t* positions, float freq_base, bool neox) const override {
    avx2::rope(threads(), x, rows, n_heads, head_dim, rope_dims, positions, freq_base, neox);
  }

  void rms_norm(const float* x, const float* weight, std::int64_t rows, std::int64_t cols, float eps,
                float* y) const override {
    avx2::rms_norm(x, weight, rows, cols, eps, y);
  }

 private:
  // Ternary matrices take the AVX-VNNI path where the CPU has it (matmul_avx_vnni.hpp).
  void matmul(const InterleavedMatrix& m, const QuantizedActivations& x, float* y, std::int64_t y_stride) const {
    if (vnni_ && !m.int8) avx_vnni_ternary_matmul(m, x, y, y_stride, threads());
    else interleaved_matmul<Avx2Traits>(m, x, y, y_stride, threads());
  }

  const bool vnni_;   // the CPU (as the host sees it, after cpu.disable) has AVX-VNNI
};

}  // namespace

std::unique_ptr<Backend> make_backend(const BackendOptions& options) { return std::make_unique<Avx2Backend>(options); }

}  // namespace bitrun::avx2
