#include "bitrun/ternary_pack.hpp"

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

}  // namespace bitrun
