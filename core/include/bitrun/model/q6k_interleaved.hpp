// Q6_K matrices in the SIMD backends' row-interleaved layout (their matmul: q6k_matmul.hpp).
// Same idea as ternary_pack.hpp: rows in groups of R (the int32 lanes of a vector), one vector load holds 4 weights
// of each of the R rows, and a multiply-add against 4 broadcast activation bytes adds one int32 lane per row. The
// bytes are Q6_K's own (6.56 bits a weight), reordered; nothing is widened, so decoding streams fewer bytes than the
// int8 copy other output types become.
//
// A group of R rows is, for each 256-weight block, 212 * R bytes (a multiple of 64 for R = 16, of 32 for R = 8):
//   low nibbles  32 vectors of 4R bytes; vector v, lane r, byte i: weight 4v + i of row r in bits 3:0 and weight
//                128 + 4v + i in bits 7:4 (q6 values, unsigned 0..63 = the weight's integer + 32)
//   high 2 bits  16 vectors of 4R bytes; vector u, lane r, byte i: bits 2s+1:2s hold the top bits of weight
//                64s + 4u + i, s = 0..3
//   scales       16 x R int8: sub-block j's scale of every row
//   d            R floats: the block's super-scale of every row (fp16 in the file, converted exactly)
// Rows past the matrix are zeros (d = 0, so they add nothing).
#pragma once

#include <cstdint>

#include "bitrun/base/aligned.hpp"
#include "bitrun/plugin/backend.hpp"

namespace bitrun {

constexpr std::int64_t kQ6kBlock = 256;   // weights per Q6_K block and per packed block

struct Q6kInterleavedMatrix {
  std::int64_t rows = 0, cols = 0, group_rows = 0;
  UninitializedAlignedVector<std::uint8_t> data;   // every byte written by pack_q6k_interleaved

  std::int64_t blocks() const { return cols / kQ6kBlock; }
  std::int64_t block_bytes() const { return 212 * group_rows; }
  std::int64_t group_bytes() const { return blocks() * block_bytes(); }
  std::int64_t groups() const { return (rows + group_rows - 1) / group_rows; }
  const std::uint8_t* group(std::int64_t g) const { return data.data() + g * group_bytes(); }
};

// Packs rows [first_row, first_row + group_rows) of `w` into one group at `out` (group_bytes()); rows past w.rows are
// zeros. A block whose d is inf or NaN is a FormatError naming its row (the Q6_K values cannot be invalid).
void pack_q6k_group(const Q6kMatrixView& w, std::int64_t first_row, std::int64_t group_rows, std::uint8_t* out);

}  // namespace bitrun
