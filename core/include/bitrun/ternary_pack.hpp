// Shared 2-bit packing used by the SIMD backends. A block of G*4 consecutive weights becomes G bytes: byte b holds
// weights b, b+G, b+2G, b+3G in bits 1:0, 3:2, 5:4, 7:6, each stored as code+1 in {0,1,2}. With G = 32 (AVX2) or
// 64 (AVX-512) one load plus a shift and a mask yields G consecutive codes that line up with G consecutive int8
// activations. The +1 offset makes codes unsigned, as vpmaddubsw / vpdpbusd need; kernels subtract the
// activation row sum once at the end.
#pragma once

#include <algorithm>
#include <cstdint>

#include "bitrun/backend.hpp"

namespace bitrun {

// Packs one row of `cols` codes (values -1/0/+1) into ceil(cols / (4*group_bytes)) blocks of group_bytes bytes.
// Positions past `cols` are packed as code 0.
void pack_ternary_row_2bit(const std::int8_t* codes, std::int64_t cols, std::int64_t group_bytes, std::uint8_t* out);

// The same row taken from bitnet.cpp's I2_S layout (`cols` a multiple of 128, cols / 4 bytes) without decoding it to
// codes: an I2_S block of 128 weights is 32 bytes whose byte m holds weights m, m+32, m+64, m+96 as code+1 from the
// high bits down, so the 2-bit layout is a reordering of the same fields (G = 32: each byte's fields reversed;
// G = 64: fields of two I2_S blocks interleaved). Supports group_bytes 32 and 64. Returns false if a field holds
// the invalid code 3; `out` is then unspecified.
bool repack_i2s_row_2bit(const std::uint8_t* i2s, std::int64_t cols, std::int64_t group_bytes, std::uint8_t* out);

// Row m of a matrix view in the 2-bit layout: repacked from the view's I2_S bytes when it has them, else packed
// from its codes (`buffer`: cols bytes for TernaryMatrixView::row). A row with an invalid I2_S code goes the
// second way, so the decoder reports it with its position.
void pack_view_row_2bit(const TernaryMatrixView& w, std::int64_t m, std::int64_t group_bytes, std::int8_t* buffer,
                        std::uint8_t* out);

// Bytes one packed row occupies.
constexpr std::int64_t packed_row_bytes_2bit(std::int64_t cols, std::int64_t group_bytes) {
  const std::int64_t block = 4 * group_bytes;
  return (cols + block - 1) / block * group_bytes;
}

// The float side of a SIMD ternary or int8 matmul, shared so every backend performs the reference's operations in
// the reference's order: for tokens t..t+NT-1 of one packed weight row, the integer dot of each activation scale
// group (RowDots(weights, packed blocks, activation rows, out) over that group's packed blocks), minus
// SumMultiplier times the group's activation sum (weights stored with an unsigned offset: +1 for ternary codes,
// +128 for int8 under vpdpbusd, 0 without), times the group's scale, summed in group order, times the row
// scale. BlockWeights / GroupBytes: weights and bytes per packed block of the backend's layout.
template <int NT, auto RowDots, std::int64_t BlockWeights, std::int64_t GroupBytes, int SumMultiplier = 1>
inline void ternary_row_tile(const std::uint8_t* row, std::int64_t blocks, const QuantizedActivations& x,
                             std::int64_t t, float row_scale, float* y, std::int64_t y_stride, std::int64_t m) {
  const std::int64_t groups = x.groups();
  const std::int64_t blocks_per_group = x.block ? x.block / BlockWeights : blocks;
  float acc[NT] = {};
  const std::int8_t* q[NT];
  std::int32_t dots[NT];
  for (std::int64_t g = 0; g < groups; ++g) {
    const std::int64_t first = g * blocks_per_group, count = std::min(blocks_per_group, blocks - first);
    for (int j = 0; j < NT; ++j) q[j] = x.row(t + j) + first * BlockWeights;
    RowDots(row + first * GroupBytes, count, q, dots);
    for (int j = 0; j < NT; ++j) {
      const auto i = static_cast<std::size_t>((t + j) * groups + g);
      // Modulo 2^32: the offset dot may wrap on very long rows even when the true dot fits.
      const auto dot = static_cast<std::int32_t>(static_cast<std::uint32_t>(dots[j]) -
                                                 static_cast<std::uint32_t>(SumMultiplier) * static_cast<std::uint32_t>(x.sum[i]));
      const float part = static_cast<float>(dot) * x.scale[i];
      acc[j] = g == 0 ? part : acc[j] + part;
    }
  }
  for (int j = 0; j < NT; ++j) y[(t + j) * y_stride + m] = acc[j] * row_scale;
}

}  // namespace bitrun
