// The row-interleaved layouts of the SIMD backends' matrices. Rows come in groups of R (the int32 lanes of the
// backend's vector: 16 for AVX-512, 8 for AVX2) and one vector load holds 4 bytes of each of the R rows, so a
// multiply-add against 4 activation bytes broadcast to every lane (vpdpbusd, vpmaddubsw) adds into one int32 lane
// per row. The R rows accumulate side by side and need no horizontal reduction, and each load of weights serves
// every token of a tile: what makes a forward of a few rows cost little more than one.
//   2-bit ternary: a group is, for each 128-weight block b and each dword d in 0..7, R dwords: row r's I2_S bytes
//     4d..4d+3 of block b (I2_S byte m holds weights m, m+32, m+64, m+96 as code+1 in bits 7:6, 5:4, 3:2, 1:0), so
//     repacking an I2_S file is a gather of dwords. Field f (shift 6 - 2f) of dword d holds weights 32f + 4d ..
//     32f + 4d + 3 of the block; the +1 offset makes codes unsigned, and kernels subtract the activation sum.
//   int8: for each 4 weights k..k+3, R dwords: row r's 4 bytes, stored + offset (128 where the multiply-add wants
//     unsigned weights, else 0).
// Columns are padded to a multiple of 128 and rows to a multiple of R, with zero weights.
#pragma once

#include <algorithm>
#include <cstdint>

#include "bitrun/plugin/backend.hpp"

namespace bitrun {

constexpr std::int64_t kInterleavedBlock = 128;   // weights per I2_S block; columns are padded to a multiple

constexpr std::int64_t interleaved_cols(std::int64_t cols) {
  return (cols + kInterleavedBlock - 1) / kInterleavedBlock * kInterleavedBlock;
}

// Bytes of one group of `group_rows` rows.
constexpr std::int64_t interleaved_group_bytes(std::int64_t cols, std::int64_t group_rows, bool int8) {
  return interleaved_cols(cols) / (int8 ? 1 : 4) * group_rows;
}

constexpr std::int64_t kMaxInterleavedGroupRows = 64;

// Scratch pack_interleaved_group needs: a row of codes and the group's rows in the layout's byte order.
constexpr std::int64_t interleaved_pack_buffer_bytes(std::int64_t cols, std::int64_t group_rows, bool int8) {
  return interleaved_cols(cols) + group_rows * interleaved_cols(cols) / (int8 ? 1 : 4);
}

// Packs rows [first_row, first_row + group_rows) of `w` (group_rows <= kMaxInterleavedGroupRows; rows past w.rows
// are zero weights) into one group at `out` (interleaved_group_bytes bytes). 2-bit rows come from the view's I2_S
// bytes when it has them, else from its codes; a row whose I2_S bytes hold the invalid code 3 is taken from the
// codes, so the decoder reports it with its position. `buffer`: interleaved_pack_buffer_bytes bytes of scratch.
// int8: weights are stored + int8_offset.
void pack_interleaved_group(const TernaryMatrixView& w, std::int64_t first_row, std::int64_t group_rows, bool int8,
                            int int8_offset, std::uint8_t* buffer, std::uint8_t* out);

}  // namespace bitrun
