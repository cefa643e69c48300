// Shared 2-bit packing used by the SIMD backends. A block of G*4 consecutive weights becomes G bytes: byte b holds
// weights b, b+G, b+2G, b+3G in bits 1:0, 3:2, 5:4, 7:6, each stored as code+1 in {0,1,2}. With G = 32 (AVX2) or
// 64 (AVX-512) one load plus a shift and a mask yields G consecutive codes that line up with G consecutive int8
// activations. The +1 offset makes codes unsigned, as vpmaddubsw / vpdpbusd need; kernels subtract the
// activation row sum once at the end.
#pragma once

#include <cstdint>

namespace bitrun {

// Packs one row of `cols` codes (values -1/0/+1) into ceil(cols / (4*group_bytes)) blocks of group_bytes bytes.
// Positions past `cols` are packed as code 0.
void pack_ternary_row_2bit(const std::int8_t* codes, std::int64_t cols, std::int64_t group_bytes, std::uint8_t* out);

// Bytes one packed row occupies.
constexpr std::int64_t packed_row_bytes_2bit(std::int64_t cols, std::int64_t group_bytes) {
  const std::int64_t block = 4 * group_bytes;
  return (cols + block - 1) / block * group_bytes;
}

}  // namespace bitrun
