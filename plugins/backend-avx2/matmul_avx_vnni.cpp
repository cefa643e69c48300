#include "matmul_avx_vnni.hpp"

#include "avx2_vectors.hpp"
#include "bitrun/base/error.hpp"

namespace bitrun::avx2 {
namespace {

// vpdpbusd on 256-bit registers: unsigned codes (0..2) times signed activations, accumulated straight into int32,
// as on AVX-512 with half the rows per register. (Ternary only: the backend packs int8 weights for vpmaddubsw.)
struct AvxVnniTraits : Avx2Vectors {
  static constexpr int kGroupTile = 1, kTokenTile = 8;   // 8 accumulators of the 16 registers (2 x 4: slower)
  static constexpr int kOneTokenGroupTile = 4;   // one token: four weight streams in flight (and 8 chains)
  static constexpr int kTwoTokenGroupTile = 2;   // two: 4 groups' 8 accumulators left one chain each, slower
  static constexpr bool kNarrowSums = false;
  static constexpr std::int32_t kInt8Offset = 0;   // unused: never given int8 matrices
  template <bool Int8>
  static Int dot(Int acc, Int w, const std::int8_t* a) {
    return _mm256_dpbusd_avx_epi32(acc, w, broadcast4(a));
  }
  static Int widen(Int acc, Int sums) { return _mm256_add_epi32(acc, sums); }
};

}  // namespace

void avx_vnni_ternary_matmul(const InterleavedMatrix& w, const QuantizedActivations& x, float* y,
                             std::int64_t y_stride, int threads) {
  if (w.int8) throw Error("avx_vnni_ternary_matmul: int8 matrices take vpmaddubsw's layout");
  interleaved_matmul<AvxVnniTraits>(w, x, y, y_stride, threads);
}

}  // namespace bitrun::avx2
