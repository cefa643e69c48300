#include "bitrun/ternary_pack.hpp"

#include <cstring>

#include "bitrun/error.hpp"

namespace bitrun {

namespace {

constexpr std::int64_t kI2sBlockBytes = kInterleavedBlock / 4;
constexpr std::uint8_t kI2sZeros = 0x55;   // an I2_S byte of four zero weights (code + 1 = 1 in each field)

// True if no 2-bit field of `bytes` (a multiple of 8) I2_S bytes holds the invalid code 3.
bool i2s_fields_valid(const std::uint8_t* i2s, std::int64_t bytes) {
  std::uint64_t invalid = 0;
  for (std::int64_t k = 0; k < bytes; k += 8) {
    std::uint64_t word;
    std::memcpy(&word, i2s + k, 8);
    invalid |= word & (word >> 1) & 0x5555555555555555ull;
  }
  return invalid == 0;
}

// Row codes (-1/0/+1; `cols` of them) in I2_S byte order, padded with zero weights to `padded_cols`.
void encode_i2s_row(const std::int8_t* codes, std::int64_t cols, std::int64_t padded_cols, std::uint8_t* out) {
  auto field = [&](std::int64_t k) { return static_cast<unsigned>(k < cols ? codes[k] + 1 : 1) & 3u; };
  for (std::int64_t b = 0; b < padded_cols / kInterleavedBlock; ++b)
    for (std::int64_t m = 0; m < kI2sBlockBytes; ++m) {
      const std::int64_t k = b * kInterleavedBlock + m;
      out[b * kI2sBlockBytes + m] =
          static_cast<std::uint8_t>(field(k) << 6 | field(k + 32) << 4 | field(k + 64) << 2 | field(k + 96));
    }
}

}  // namespace

void pack_interleaved_group(const TernaryMatrixView& w, std::int64_t first_row, std::int64_t group_rows, bool int8,
                            int int8_offset, std::uint8_t* buffer, std::uint8_t* out) {
  const std::int64_t padded = interleaved_cols(w.cols);
  auto* codes = reinterpret_cast<std::int8_t*>(buffer);
  std::uint8_t* encoded = buffer + padded;
  for (std::int64_t r = 0; r < group_rows; ++r) {
    const std::int64_t m = first_row + r;
    if (int8) {
      const std::int8_t* src = m < w.rows ? w.row(m, codes) : nullptr;
      for (std::int64_t k = 0; k < padded; ++k) {
        const int value = src && k < w.cols ? src[k] : 0;
        out[k / 4 * 4 * group_rows + 4 * r + k % 4] = static_cast<std::uint8_t>(value + int8_offset);
      }
      continue;
    }
    const std::uint8_t* src = encoded;
    if (m >= w.rows) {
      std::memset(encoded, kI2sZeros, static_cast<std::size_t>(padded / 4));
    } else if (w.i2s && w.cols % kInterleavedBlock == 0 && i2s_fields_valid(w.i2s + m * (w.cols / 4), w.cols / 4)) {
      src = w.i2s + m * (w.cols / 4);
    } else {
      encode_i2s_row(w.row(m, codes), w.cols, padded, encoded);
    }
    for (std::int64_t j = 0; j < padded / 16; ++j) std::memcpy(out + j * 4 * group_rows + 4 * r, src + 4 * j, 4);
  }
}

}  // namespace bitrun
