#include "bitrun/ternary_pack.hpp"

#include "bitrun/error.hpp"

namespace bitrun {

void pack_ternary_row_2bit(const std::int8_t* codes, std::int64_t cols, std::int64_t group_bytes, std::uint8_t* out) {
  const std::int64_t block = 4 * group_bytes;
  const std::int64_t blocks = (cols + block - 1) / block;
  const std::int64_t full = cols / block;
  for (std::int64_t blk = 0; blk < full; ++blk) {   // whole blocks: no bounds checks, so the loop vectorizes
    const std::int8_t* c = codes + blk * block;
    std::uint8_t* o = out + blk * group_bytes;
    for (std::int64_t b = 0; b < group_bytes; ++b)
      o[b] = static_cast<std::uint8_t>((c[b] + 1) | (c[b + group_bytes] + 1) << 2 | (c[b + 2 * group_bytes] + 1) << 4 |
                                       (c[b + 3 * group_bytes] + 1) << 6);
  }
  for (std::int64_t blk = full; blk < blocks; ++blk) {
    for (std::int64_t b = 0; b < group_bytes; ++b) {
      std::uint8_t byte = 0;
      for (std::int64_t g = 0; g < 4; ++g) {
        const std::int64_t k = blk * block + g * group_bytes + b;
        const int code = k < cols ? codes[k] : 0;
        byte |= static_cast<std::uint8_t>((code + 1) & 3) << (2 * g);
      }
      out[blk * group_bytes + b] = byte;
    }
  }
}

namespace {

// Field moves on one I2_S byte x (weights m, m+32, m+64, m+96 in bits 7:6, 5:4, 3:2, 1:0).
constexpr std::uint8_t fields_reversed(std::uint8_t x) {   // m, m+32, m+64, m+96 in bits 1:0, 3:2, 5:4, 7:6
  return static_cast<std::uint8_t>(((x >> 6) & 0x03) | ((x >> 2) & 0x0c) | ((x << 2) & 0x30) | ((x << 6) & 0xc0));
}
constexpr std::uint8_t fields_even(std::uint8_t x) {   // m, m+64 in bits 1:0, 3:2
  return static_cast<std::uint8_t>(((x >> 6) & 0x03) | (x & 0x0c));
}
constexpr std::uint8_t fields_odd(std::uint8_t x) {   // m+32, m+96 in bits 1:0, 3:2
  return static_cast<std::uint8_t>(((x >> 4) & 0x03) | ((x << 2) & 0x0c));
}

constexpr std::int64_t kI2sBlock = 128, kI2sBlockBytes = 32;
constexpr std::uint8_t kI2sZeros = 0x55;   // an I2_S byte of four zero weights (code + 1 = 1 in each field)

}  // namespace

bool repack_i2s_row_2bit(const std::uint8_t* i2s, std::int64_t cols, std::int64_t group_bytes, std::uint8_t* out) {
  if (cols % kI2sBlock != 0) throw Error("repack_i2s_row_2bit: I2_S rows hold whole blocks of 128 weights");
  const std::int64_t bytes = cols / 4;
  std::uint8_t invalid = 0;   // a field of 0b11 anywhere in the row
  for (std::int64_t k = 0; k < bytes; ++k) invalid |= i2s[k] & (i2s[k] >> 1) & 0x55;
  if (invalid) return false;
  if (group_bytes == kI2sBlockBytes) {   // same blocks, fields reversed in each byte
    for (std::int64_t k = 0; k < bytes; ++k) out[k] = fields_reversed(i2s[k]);
    return true;
  }
  if (group_bytes != 2 * kI2sBlockBytes) throw Error("repack_i2s_row_2bit: unsupported group size");
  // A 256-weight block from I2_S blocks a (weights 0..127) and b (128..255): byte m < 32 holds weights m, m+64,
  // m+128, m+192 and byte 32+m weights m+32, m+96, m+160, m+224. A row ending in half a block pads b with zeros.
  for (std::int64_t first = 0; first < bytes; first += 2 * kI2sBlockBytes) {
    const std::uint8_t* a = i2s + first;
    const std::uint8_t* b = a + kI2sBlockBytes;
    std::uint8_t* o = out + first;
    if (first + kI2sBlockBytes < bytes) {
      for (int m = 0; m < kI2sBlockBytes; ++m) {
        o[m] = static_cast<std::uint8_t>(fields_even(a[m]) | fields_even(b[m]) << 4);
        o[kI2sBlockBytes + m] = static_cast<std::uint8_t>(fields_odd(a[m]) | fields_odd(b[m]) << 4);
      }
    } else {
      for (int m = 0; m < kI2sBlockBytes; ++m) {
        o[m] = static_cast<std::uint8_t>(fields_even(a[m]) | fields_even(kI2sZeros) << 4);
        o[kI2sBlockBytes + m] = static_cast<std::uint8_t>(fields_odd(a[m]) | fields_odd(kI2sZeros) << 4);
      }
    }
  }
  return true;
}

void pack_view_row_2bit(const TernaryMatrixView& w, std::int64_t m, std::int64_t group_bytes, std::int8_t* buffer,
                        std::uint8_t* out) {
  if (w.i2s && repack_i2s_row_2bit(w.i2s + m * (w.cols / 4), w.cols, group_bytes, out)) return;
  pack_ternary_row_2bit(w.row(m, buffer), w.cols, group_bytes, out);
}

}  // namespace bitrun
