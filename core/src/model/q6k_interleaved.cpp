#include "bitrun/model/q6k_interleaved.hpp"

#include "gguf/ggml_codecs.hpp"

namespace bitrun {

namespace {

// One 256-weight block of rows [first, first + R) at `out` (212 * R bytes), the layout of q6k_interleaved.hpp.
void pack_block(const Q6kMatrixView& w, std::int64_t first, std::int64_t R, std::int64_t b, std::uint8_t* out) {
  std::uint8_t* low = out;
  std::uint8_t* high = out + 128 * R;
  auto* scales = reinterpret_cast<std::int8_t*>(out + 192 * R);
  float* d = reinterpret_cast<float*>(out + 208 * R);
  const std::int64_t blocks = w.cols / kQ6kBlock, block_bytes = type_traits(GgmlType::Q6_K).block_bytes;
  for (std::int64_t r = 0; r < R; ++r) {
    std::uint8_t q[kQ6kBlock] = {};
    std::int8_t sc[16] = {};
    float dr = 0.0f;
    const std::int64_t m = first + r;
    if (m < w.rows) {
      detail::unpack_q6_k_block(w.blocks + (m * blocks + b) * block_bytes, q, sc, dr);
      detail::check_q6_k_scale(dr, m, b);
    }
    for (int v = 0; v < 32; ++v)
      for (int i = 0; i < 4; ++i)
        low[(v * R + r) * 4 + i] = static_cast<std::uint8_t>((q[4 * v + i] & 0xf) | (q[128 + 4 * v + i] & 0xf) << 4);
    for (int u = 0; u < 16; ++u)
      for (int i = 0; i < 4; ++i) {
        int bits = 0;
        for (int s = 0; s < 4; ++s) bits |= (q[64 * s + 4 * u + i] >> 4) << (2 * s);
        high[(u * R + r) * 4 + i] = static_cast<std::uint8_t>(bits);
      }
    for (int j = 0; j < 16; ++j) scales[j * R + r] = sc[j];
    d[r] = dr;
  }
}

}  // namespace

void pack_q6k_group(const Q6kMatrixView& w, std::int64_t first_row, std::int64_t group_rows, std::uint8_t* out) {
  const std::int64_t blocks = w.cols / kQ6kBlock;
  for (std::int64_t b = 0; b < blocks; ++b) pack_block(w, first_row, group_rows, b, out + b * 212 * group_rows);
}

}  // namespace bitrun
