#include "bitrun/model/ternary_pack.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <cstring>

#include "bitrun/base/error.hpp"
#include "gguf/ggml_codecs.hpp"

namespace bitrun {

namespace {

constexpr std::uint8_t kI2sZeros = 0x55;   // an I2_S byte of four zero weights (code + 1 = 1 in each field)

// out[(j * rows + r) * 4 ..] = dword j of row r, for j < dwords: 4 x 4 blocks of dwords transposed in SSE2
// registers (x86-64's baseline) when rows and dwords allow, which made loading a 2B model's weights ~3x cheaper
// than moving one dword at a time.
void interleave_dwords(const std::uint8_t* const* src, std::int64_t rows, std::int64_t dwords, std::uint8_t* out) {
  std::int64_t j0 = 0;
#if defined(__SSE2__)
  if (rows % 4 == 0) {
    for (; j0 + 4 <= dwords; j0 += 4)
      for (std::int64_t r = 0; r < rows; r += 4) {
        auto load = [&](std::int64_t i) {
          return _mm_loadu_si128(reinterpret_cast<const __m128i*>(src[r + i] + 4 * j0));
        };
        const __m128i a0 = load(0), a1 = load(1), a2 = load(2), a3 = load(3);
        const __m128i t0 = _mm_unpacklo_epi32(a0, a1), t1 = _mm_unpacklo_epi32(a2, a3);
        const __m128i t2 = _mm_unpackhi_epi32(a0, a1), t3 = _mm_unpackhi_epi32(a2, a3);
        auto store = [&](std::int64_t j, __m128i v) {
          _mm_storeu_si128(reinterpret_cast<__m128i*>(out + (j * rows + r) * 4), v);
        };
        store(j0, _mm_unpacklo_epi64(t0, t1));
        store(j0 + 1, _mm_unpackhi_epi64(t0, t1));
        store(j0 + 2, _mm_unpacklo_epi64(t2, t3));
        store(j0 + 3, _mm_unpackhi_epi64(t2, t3));
      }
  }
#endif
  for (std::int64_t j = j0; j < dwords; ++j)
    for (std::int64_t r = 0; r < rows; ++r) std::memcpy(out + (j * rows + r) * 4, src[r] + 4 * j, 4);
}

}  // namespace

void pack_interleaved_group(const TernaryMatrixView& w, std::int64_t first_row, std::int64_t group_rows, bool int8,
                            int int8_offset, std::uint8_t* buffer, std::uint8_t* out) {
  if (group_rows < 1 || group_rows > kMaxInterleavedGroupRows) throw Error("pack_interleaved_group: bad group size");
  const std::int64_t padded = interleaved_cols(w.cols), row_bytes = int8 ? padded : padded / 4;
  auto* codes = reinterpret_cast<std::int8_t*>(buffer);
  std::uint8_t* rows = buffer + padded;
  // Each row's bytes in the layout's order (I2_S, or int8 + offset), then the group's dwords written in order.
  const std::uint8_t* src[kMaxInterleavedGroupRows];
  for (std::int64_t r = 0; r < group_rows; ++r) {
    const std::int64_t m = first_row + r;
    std::uint8_t* own = rows + r * row_bytes;
    src[r] = own;
    if (int8) {
      const std::int8_t* values = m < w.rows ? w.row(m, codes) : nullptr;
      for (std::int64_t k = 0; k < padded; ++k)
        own[k] = static_cast<std::uint8_t>((values && k < w.cols ? values[k] : 0) + int8_offset);
    } else if (m >= w.rows) {
      std::memset(own, kI2sZeros, static_cast<std::size_t>(row_bytes));
    } else if (w.i2s && w.cols % kInterleavedBlock == 0 && !detail::has_code_3(w.i2s + m * (w.cols / 4), w.cols / 4)) {
      src[r] = w.i2s + m * (w.cols / 4);
    } else {   // the row's codes padded with zero weights, in I2_S order
      const std::int8_t* row = w.row(m, codes);
      if (row != codes) std::memcpy(codes, row, static_cast<std::size_t>(w.cols));
      std::memset(codes + w.cols, 0, static_cast<std::size_t>(padded - w.cols));
      detail::encode_i2s_codes(codes, padded, own);
    }
  }
  interleave_dwords(src, group_rows, row_bytes / 4, out);
}

}  // namespace bitrun
