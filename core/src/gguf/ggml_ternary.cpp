// The ternary layouts: bitnet.cpp's x86 I2_S and llama.cpp's TQ2_0 / TQ1_0, their packing from codes and scales,
// and the two ways to get codes from floats (absmean quantization, or values that are already ternary).
// Stored code c in {0, 1, 2} means weight c - 1 everywhere.
#include <charconv>
#include <cmath>
#include <string>
#include <utility>

#include "bitrun/base/error.hpp"
#include "gguf/ggml_codecs.hpp"

namespace bitrun {
namespace {

constexpr std::int64_t kI2sBlock = 128, kI2sBlockBytes = 32;
constexpr std::int64_t kTqBlock = 256, kTq2Bytes = 66, kTq1Bytes = 54;
constexpr std::int64_t kTq2DOff = 64, kTq1QhOff = 48, kTq1DOff = 52;

std::string name_of(GgmlType type) { return type_traits(type).name; }

// Shortest text that identifies a float (std::to_string would print 1e-7 as "0.000000").
std::string num(float v) {
  char buf[32];
  return std::string(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

std::string element(std::int64_t i, std::int64_t row_len) {
  return "element " + std::to_string(i) + " (row " + std::to_string(i / row_len) + ", column " +
         std::to_string(i % row_len) + ")";
}

// Validates type and shape (tensor_bytes throws for bad shapes and overflow) and returns the element count.
std::int64_t ternary_elements(GgmlType type, std::int64_t row_len, std::int64_t n_rows) {
  if (!type_traits(type).ternary) throw FormatError("ggml type " + name_of(type) + " is not a ternary type");
  tensor_bytes(type, row_len, n_rows);
  return row_len * n_rows;
}

// Byte and bit shift of weight j (0..127) of an I2_S block: groups of 32 from the high bits down.
constexpr std::int64_t i2s_byte(std::int64_t j) { return j % 32; }
constexpr int i2s_shift(std::int64_t j) { return 6 - 2 * static_cast<int>(j / 32); }

// Byte and shift of weight j (0..255) of a TQ2_0 block: each 128-half has 32 bytes, groups of 32 from the low bits up.
constexpr std::int64_t tq2_byte(std::int64_t j) { return 32 * (j / 128) + j % 32; }
constexpr int tq2_shift(std::int64_t j) { return 2 * static_cast<int>((j % 128) / 32); }

// TQ1_0 stores weight j (0..255) as base-3 digit `digit` of byte `byte` (qs[0..47], then qh[0..3] at 48..51):
// qs[m] holds j = m + 32n, qs[32 + m] holds j = 160 + m + 16n, qh[m] holds j = 240 + m + 4n.
struct Trit {
  int byte, digit;
};
constexpr Trit tq1_position(int j) {
  if (j < 160) return {j % 32, j / 32};
  if (j < 240) return {32 + (j - 160) % 16, (j - 160) / 16};
  return {48 + (j - 240) % 4, (j - 240) / 4};
}

// Codes (digit - 1) of the first Digits base-3 digits of Bytes consecutive TQ1_0 bytes: out[Bytes * d + m] is digit
// d (0 = most significant) of byte m. A byte holds a base-3 fraction scaled to 256: multiplying by 3^d (mod 256)
// drops the leading digits, and * 3 >> 8 reads the next one, always 0..2 (TQ1_0 has no invalid code). Constant
// multipliers over contiguous bytes, so the compiler vectorizes it.
template <int Bytes, int Digits>
void tq1_digits(const std::uint8_t* q, std::int8_t* out) {
  static_assert(Digits <= 5);
  constexpr std::uint8_t kPow3[5] = {1, 3, 9, 27, 81};
  [&]<std::size_t... D>(std::index_sequence<D...>) {
    (
        [&] {
          for (int m = 0; m < Bytes; ++m) {
            const auto shifted = static_cast<std::uint8_t>(q[m] * kPow3[D]);
            out[Bytes * static_cast<int>(D) + m] = static_cast<std::int8_t>(((shifted * 3) >> 8) - 1);
          }
        }(),
        ...);
  }(std::make_index_sequence<Digits>{});
}

// `what` names the scale ("block", "scale") with its index, or the tensor's scale when index < 0.
float checked_scale(GgmlType type, float s, const char* what, std::int64_t index) {
  if (!std::isfinite(s))
    throw FormatError(name_of(type) + " " + (index < 0 ? std::string("tensor") : what + (" " + std::to_string(index))) +
                      " has a non-finite scale");
  return s;
}

// Validates a TernaryTensor against `type` and returns its element count.
std::int64_t check_ternary_tensor(GgmlType type, const TernaryTensor& t) {
  const std::int64_t n = ternary_elements(type, t.row_len, t.n_rows);
  if (t.codes.size() != static_cast<std::uint64_t>(n))
    throw FormatError(name_of(type) + ": ternary tensor of " + std::to_string(n) + " elements has " +
                      std::to_string(t.codes.size()) + " codes");
  for (std::int64_t i = 0; i < n; ++i) {
    const int c = t.codes[static_cast<std::size_t>(i)];
    if (c < -1 || c > 1)
      throw FormatError(name_of(type) + ": code " + std::to_string(c) + " at " + element(i, t.row_len) +
                        " is not -1, 0 or +1");
  }
  if (n > 0) {
    if (t.scale_block <= 0)
      throw FormatError(name_of(type) + ": scale_block " + std::to_string(t.scale_block) + " is not positive");
    const std::int64_t groups = n / t.scale_block + (n % t.scale_block != 0 ? 1 : 0);
    if (t.scales.size() != static_cast<std::uint64_t>(groups))
      throw FormatError(name_of(type) + ": " + std::to_string(n) + " elements in groups of " +
                        std::to_string(t.scale_block) + " need " + std::to_string(groups) + " scales, got " +
                        std::to_string(t.scales.size()));
  }
  for (std::size_t g = 0; g < t.scales.size(); ++g)
    checked_scale(type, t.scales[g], "scale", static_cast<std::int64_t>(g));
  return n;
}

// The one scale of 256-block b; every scale group overlapping the block must agree (TQ stores one d per block).
float tq_block_scale(GgmlType type, const TernaryTensor& t, std::int64_t b) {
  const auto first = static_cast<std::size_t>(b * kTqBlock / t.scale_block);
  const auto last = static_cast<std::size_t>((b * kTqBlock + kTqBlock - 1) / t.scale_block);
  for (std::size_t g = first + 1; g <= last; ++g)
    if (t.scales[g] != t.scales[first])
      throw FormatError(name_of(type) + " block " + std::to_string(b) + " spans scale groups with different scales (" +
                        num(t.scales[first]) + " and " + num(t.scales[g]) +
                        "); the format stores one scale per 256 weights");
  return t.scales[first];
}

std::uint16_t tq_fp16_scale(GgmlType type, float s, std::int64_t b) {
  const std::uint16_t h = f32_to_fp16(s);
  if ((h & 0x7c00) == 0x7c00)
    throw FormatError(name_of(type) + " block " + std::to_string(b) + ": scale " + num(s) + " does not fit in fp16");
  return h;
}

}   // namespace

void decode_ternary_rows(GgmlType type, const std::uint8_t* data, std::uint64_t data_bytes, std::int64_t row_len,
                         std::int64_t n_rows, std::int64_t first_row, std::int64_t count, std::int8_t* out) {
  ternary_elements(type, row_len, n_rows);
  const std::uint64_t need = tensor_bytes(type, row_len, n_rows);
  if (data_bytes < need)
    throw FormatError(name_of(type) + " tensor of " + std::to_string(n_rows) + " x " + std::to_string(row_len) +
                      " needs " + std::to_string(need) + " bytes, got " + std::to_string(data_bytes));
  if (first_row < 0 || count < 0 || first_row > n_rows - count)
    throw FormatError(name_of(type) + ": rows " + std::to_string(first_row) + "+" + std::to_string(count) +
                      " outside a tensor of " + std::to_string(n_rows) + " rows");
  const std::int64_t first = first_row * row_len, n = count * row_len;   // element range; rows hold whole blocks
  auto invalid_code = [&](std::int64_t i) {
    return FormatError(name_of(type) + ": invalid code 3 at " + element(i, row_len));
  };
  switch (type) {
    case GgmlType::I2_S:
      // Byte m of a block holds weights m, m+32, m+64, m+96 (high bits first). Written as plain loops over
      // contiguous bytes so the compiler vectorizes them: loading a model is dominated by this.
      for (std::int64_t b = first / kI2sBlock; b < (first + n) / kI2sBlock; ++b) {
        const std::uint8_t* blk = data + b * kI2sBlockBytes;
        if (detail::has_code_3(blk, kI2sBlockBytes)) {
          for (std::int64_t j = 0; j < kI2sBlock; ++j)
            if (((blk[i2s_byte(j)] >> i2s_shift(j)) & 3) == 3) throw invalid_code(b * kI2sBlock + j);
        }
        std::int8_t* o = out + (b * kI2sBlock - first);
        for (int g = 0; g < 4; ++g)
          for (int m = 0; m < 32; ++m) o[32 * g + m] = static_cast<std::int8_t>(((blk[m] >> (6 - 2 * g)) & 3) - 1);
      }
      return;
    case GgmlType::TQ2_0:
      // Each 128-half of a block has 32 bytes; byte m of half h holds weights 128h + m + 32g in bits 2g (low bits
      // first). Plain loops over contiguous bytes, as for I2_S, so the compiler vectorizes them.
      for (std::int64_t b = first / kTqBlock; b < (first + n) / kTqBlock; ++b) {
        const std::uint8_t* blk = data + b * kTq2Bytes;
        if (detail::has_code_3(blk, 64)) {
          for (std::int64_t j = 0; j < kTqBlock; ++j)
            if (((blk[tq2_byte(j)] >> tq2_shift(j)) & 3) == 3) throw invalid_code(b * kTqBlock + j);
        }
        std::int8_t* o = out + (b * kTqBlock - first);
        for (int h = 0; h < 2; ++h)
          for (int g = 0; g < 4; ++g)
            for (int m = 0; m < 32; ++m)
              o[128 * h + 32 * g + m] = static_cast<std::int8_t>(((blk[32 * h + m] >> (2 * g)) & 3) - 1);
      }
      return;
    case GgmlType::TQ1_0:
      // The three byte ranges of tq1_position, each read digit by digit over contiguous bytes (vectorizable).
      for (std::int64_t b = first / kTqBlock; b < (first + n) / kTqBlock; ++b) {
        const std::uint8_t* blk = data + b * kTq1Bytes;
        std::int8_t* o = out + (b * kTqBlock - first);
        tq1_digits<32, 5>(blk, o);
        tq1_digits<16, 5>(blk + 32, o + 160);
        tq1_digits<4, 4>(blk + 48, o + 240);
      }
      return;
    default: throw FormatError("ggml type " + name_of(type) + " is not a ternary type");
  }
}

TernaryScales ternary_scales(GgmlType type, const std::uint8_t* data, std::uint64_t data_bytes, std::int64_t row_len,
                             std::int64_t n_rows) {
  const std::int64_t n = ternary_elements(type, row_len, n_rows);
  const std::uint64_t need = tensor_bytes(type, row_len, n_rows);
  if (data_bytes < need)
    throw FormatError(name_of(type) + " tensor of " + std::to_string(n_rows) + " x " + std::to_string(row_len) +
                      " needs " + std::to_string(need) + " bytes, got " + std::to_string(data_bytes));
  TernaryScales s;
  if (type == GgmlType::I2_S) {
    s.scale_block = n;
    s.scales = {checked_scale(type, detail::load_le<float>(data + n / 4), "tensor", -1)};
    return s;
  }
  const bool tq2 = type == GgmlType::TQ2_0;
  const std::int64_t block_bytes = tq2 ? kTq2Bytes : kTq1Bytes;
  s.scale_block = kTqBlock;
  s.scales.resize(static_cast<std::size_t>(n / kTqBlock));
  for (std::int64_t b = 0; b < n / kTqBlock; ++b) {
    const float d = fp16_to_f32(detail::load_le<std::uint16_t>(data + b * block_bytes + (tq2 ? kTq2DOff : kTq1DOff)));
    s.scales[static_cast<std::size_t>(b)] = checked_scale(type, d, "block", b);
  }
  return s;
}

TernaryTensor decode_ternary(GgmlType type, const std::uint8_t* data, std::uint64_t data_bytes, std::int64_t row_len,
                             std::int64_t n_rows) {
  TernaryScales scales = ternary_scales(type, data, data_bytes, row_len, n_rows);
  TernaryTensor t;
  t.row_len = row_len;
  t.n_rows = n_rows;
  t.codes.resize(static_cast<std::size_t>(row_len * n_rows));
  decode_ternary_rows(type, data, data_bytes, row_len, n_rows, 0, n_rows, t.codes.data());
  t.scale_block = scales.scale_block;
  t.scales = std::move(scales.scales);
  return t;
}

std::vector<std::uint8_t> encode_ternary(GgmlType type, const TernaryTensor& tensor) {
  const std::int64_t n = check_ternary_tensor(type, tensor);
  std::vector<std::uint8_t> out(static_cast<std::size_t>(tensor_bytes(type, tensor.row_len, tensor.n_rows)), 0);
  auto code = [&](std::int64_t i) { return tensor.codes[static_cast<std::size_t>(i)] + 1; };

  switch (type) {
    case GgmlType::I2_S: {
      for (std::size_t g = 1; g < tensor.scales.size(); ++g)
        if (tensor.scales[g] != tensor.scales[0])
          throw FormatError("i2_s stores one scale per tensor, but scale " + std::to_string(g) + " (" +
                            num(tensor.scales[g]) + ") differs from scale 0 (" + num(tensor.scales[0]) + ")");
      detail::encode_i2s_codes(tensor.codes.data(), n, out.data());
      // The scale follows the packed codes; the rest of the 32-byte trailer stays zero.
      detail::store_le<float>(out.data() + n / 4, tensor.scales.empty() ? 0.0f : tensor.scales[0]);
      break;
    }
    case GgmlType::TQ2_0: {
      for (std::int64_t b = 0; b < n / kTqBlock; ++b) {
        std::uint8_t* blk = out.data() + b * kTq2Bytes;
        for (int j = 0; j < kTqBlock; ++j)
          blk[tq2_byte(j)] |= static_cast<std::uint8_t>(code(b * kTqBlock + j) << tq2_shift(j));
        detail::store_le<std::uint16_t>(blk + kTq2DOff, tq_fp16_scale(type, tq_block_scale(type, tensor, b), b));
      }
      break;
    }
    case GgmlType::TQ1_0: {
      for (std::int64_t b = 0; b < n / kTqBlock; ++b) {
        std::uint8_t* blk = out.data() + b * kTq1Bytes;
        // Base-3 value of each byte, first weight most significant: weights come in digit order per byte.
        int value[52] = {};
        for (int j = 0; j < kTqBlock; ++j) {
          int& v = value[tq1_position(j).byte];
          v = v * 3 + code(b * kTqBlock + j);
        }
        // qh bytes hold only 4 trits; a fifth, zero, least significant digit makes them decode like qs bytes.
        for (int m = kTq1QhOff; m < kTq1QhOff + 4; ++m) value[m] *= 3;
        // Scaled to a byte rounding up, so that digit extraction by multiplication recovers every digit exactly.
        for (int m = 0; m < 52; ++m) blk[m] = static_cast<std::uint8_t>((value[m] * 256 + 242) / 243);
        detail::store_le<std::uint16_t>(blk + kTq1DOff, tq_fp16_scale(type, tq_block_scale(type, tensor, b), b));
      }
      break;
    }
    default: throw FormatError("ggml type " + name_of(type) + " is not a ternary type");
  }
  return out;
}

TernaryTensor ternarize_absmean(const float* values, std::int64_t row_len, std::int64_t n_rows) {
  std::int64_t n = 0;
  if (row_len <= 0 || n_rows < 0 || __builtin_mul_overflow(row_len, n_rows, &n))
    throw FormatError("ternarize_absmean: invalid shape of " + std::to_string(n_rows) + " rows of " +
                      std::to_string(row_len) + " elements");
  double sum = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(values[i])) throw FormatError("ternarize_absmean: non-finite value at " + element(i, row_len));
    sum += std::fabs(static_cast<double>(values[i]));
  }
  const float mean = n > 0 ? static_cast<float>(sum / static_cast<double>(n)) : 0.0f;
  const float s = std::fmax(mean, 1e-5f);

  TernaryTensor t;
  t.row_len = row_len;
  t.n_rows = n_rows;
  t.scale_block = n;
  t.scales = {s};
  t.codes.resize(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    // round-then-clamp to [-1, 1]; ties (exactly +-0.5) go to 0, as with round-half-to-even (torch.round).
    const float r = values[i] / s;
    t.codes[static_cast<std::size_t>(i)] = static_cast<std::int8_t>(r > 0.5f ? 1 : (r < -0.5f ? -1 : 0));
  }
  return t;
}

namespace detail {

bool has_code_3(const std::uint8_t* p, std::int64_t bytes) {
  std::uint8_t invalid = 0;
  for (std::int64_t m = 0; m < bytes; ++m) invalid |= p[m] & (p[m] >> 1) & 0x55;
  return invalid != 0;
}

void encode_i2s_codes(const std::int8_t* codes, std::int64_t n, std::uint8_t* out) {
  for (std::int64_t b = 0; b < n / kI2sBlock; ++b) {
    std::uint8_t* blk = out + b * kI2sBlockBytes;
    const std::int8_t* c = codes + b * kI2sBlock;
    for (std::int64_t m = 0; m < kI2sBlockBytes; ++m)   // weights m, m+32, m+64, m+96 from the high bits down
      blk[m] = static_cast<std::uint8_t>((c[m] + 1) << 6 | (c[m + 32] + 1) << 4 | (c[m + 64] + 1) << 2 |
                                         (c[m + 96] + 1));
  }
}

// Each scale group must hold only 0 and +-s: the first nonzero magnitude is the reference and every other nonzero
// magnitude must lie within 0.1% of it. The group's scale is the mean nonzero magnitude (exactly s for exact
// input). An all-zero group gets scale 0.
TernaryTensor ternary_from_exact(GgmlType type, const float* values, std::int64_t row_len, std::int64_t n_rows) {
  const std::int64_t n = ternary_elements(type, row_len, n_rows);
  const bool per_tensor = type == GgmlType::I2_S;
  const std::int64_t group = per_tensor ? n : kTqBlock;

  TernaryTensor t;
  t.row_len = row_len;
  t.n_rows = n_rows;
  t.scale_block = group;
  t.codes.resize(static_cast<std::size_t>(n));
  const std::int64_t n_groups = per_tensor ? 1 : n / kTqBlock;
  for (std::int64_t g = 0; g < n_groups; ++g) {
    float ref = 0.0f;
    double sum = 0.0;
    std::int64_t count = 0;
    for (std::int64_t i = g * group; i < (g + 1) * group; ++i) {
      const float v = values[i];
      if (!std::isfinite(v))
        throw FormatError(name_of(type) + ": non-finite value at " + element(i, row_len) + " cannot be ternary");
      if (v == 0.0f) {
        t.codes[static_cast<std::size_t>(i)] = 0;
        continue;
      }
      const float a = std::fabs(v);
      if (ref == 0.0f) ref = a;
      if (std::fabs(a - ref) > 1e-3f * ref)
        throw FormatError(name_of(type) + ": value " + num(v) + " at " + element(i, row_len) + " is not 0 or +-" +
                          num(ref) + " (the first nonzero magnitude of " +
                          (per_tensor ? std::string("the tensor") : "256-block " + std::to_string(g)) +
                          "); use ternarize_absmean for weights that are not already ternary");
      t.codes[static_cast<std::size_t>(i)] = static_cast<std::int8_t>(v > 0.0f ? 1 : -1);
      sum += a;
      ++count;
    }
    t.scales.push_back(count > 0 ? static_cast<float>(sum / static_cast<double>(count)) : 0.0f);
  }
  return t;
}

}   // namespace detail
}   // namespace bitrun
