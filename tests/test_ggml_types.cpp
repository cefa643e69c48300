// The ggml type codecs: fp16 / bf16 conversions, sizes, round trips, hand-made blocks of every layout, error
// handling, and the ternary tensors of GGUF files written by bitnet.cpp and llama.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "bitrun/base/error.hpp"
#include "bitrun/gguf/ggml_types.hpp"
#include "bitrun/gguf/gguf.hpp"
#include "test_support.hpp"

namespace bitrun {
namespace {

using test::error_message;

constexpr GgmlType kAllTypes[] = {GgmlType::F32,  GgmlType::F16,   GgmlType::BF16,  GgmlType::Q8_0,
                                  GgmlType::Q6_K, GgmlType::TQ1_0, GgmlType::TQ2_0, GgmlType::I2_S};

std::vector<float> random_values(std::size_t n, std::uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

std::vector<std::int8_t> random_codes(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::int8_t> c(n);
  for (auto& x : c) x = static_cast<std::int8_t>(static_cast<int>(rng() % 3) - 1);
  return c;
}

std::vector<float> decode(GgmlType type, const std::vector<std::uint8_t>& bytes, std::int64_t row_len,
                          std::int64_t n_rows) {
  std::vector<float> out(static_cast<std::size_t>(row_len * n_rows));
  dequantize(type, bytes.data(), bytes.size(), row_len, n_rows, out.data());
  return out;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// ---------------------------------------------------------------------------------------------------------------
// Type table and sizes

TEST(GgmlTypes, NamesAndIdsRoundTrip) {
  for (GgmlType t : kAllTypes) {
    EXPECT_EQ(ggml_type_from_name(type_traits(t).name), t);
    EXPECT_EQ(ggml_type_from_id(static_cast<std::uint32_t>(t)), t);
  }
  EXPECT_EQ(ggml_type_from_name("TQ2_0"), GgmlType::TQ2_0);
  EXPECT_EQ(ggml_type_from_name("q4_0"), std::nullopt);
  EXPECT_EQ(ggml_type_from_id(2), std::nullopt);
  EXPECT_THROW(type_traits(static_cast<GgmlType>(99)), FormatError);
}

TEST(GgmlTypes, TensorBytes) {
  EXPECT_EQ(tensor_bytes(GgmlType::F32, 7, 3), 84u);
  EXPECT_EQ(tensor_bytes(GgmlType::F16, 7, 3), 42u);
  EXPECT_EQ(tensor_bytes(GgmlType::BF16, 1, 1), 2u);
  EXPECT_EQ(tensor_bytes(GgmlType::Q8_0, 96, 3), 9u * 34u);
  EXPECT_EQ(tensor_bytes(GgmlType::Q6_K, 512, 3), 6u * 210u);
  EXPECT_EQ(tensor_bytes(GgmlType::TQ2_0, 256, 5), 5u * 66u);
  EXPECT_EQ(tensor_bytes(GgmlType::TQ1_0, 768, 2), 6u * 54u);
  EXPECT_EQ(tensor_bytes(GgmlType::I2_S, 256, 3), 768u / 4 + 32u);
  EXPECT_EQ(tensor_bytes(GgmlType::F32, 5, 0), 0u);
  EXPECT_EQ(tensor_bytes(GgmlType::I2_S, 128, 0), 32u);
}

TEST(GgmlTypes, TensorBytesRejectsBadShapes) {
  EXPECT_THROW(tensor_bytes(GgmlType::F32, 0, 1), FormatError);
  EXPECT_THROW(tensor_bytes(GgmlType::F32, -4, 1), FormatError);
  EXPECT_THROW(tensor_bytes(GgmlType::F32, 4, -1), FormatError);
  EXPECT_TRUE(contains(error_message<FormatError>([] { tensor_bytes(GgmlType::Q8_0, 48, 1); }), "multiple"));
  EXPECT_THROW(tensor_bytes(GgmlType::TQ2_0, 128, 1), FormatError);
  EXPECT_THROW(tensor_bytes(GgmlType::I2_S, 64, 1), FormatError);
}

TEST(GgmlTypes, TensorBytesRejectsOverflow) {
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  // Element count overflows int64.
  EXPECT_TRUE(contains(error_message<FormatError>([] { tensor_bytes(GgmlType::F32, kMax, 2); }), "overflow"));
  EXPECT_THROW(tensor_bytes(GgmlType::TQ2_0, std::int64_t{1} << 40, std::int64_t{1} << 30), FormatError);
  // Element count fits, byte count does not fit in uint64.
  EXPECT_TRUE(contains(
      error_message<FormatError>([] { tensor_bytes(GgmlType::F32, std::int64_t{1} << 31, std::int64_t{1} << 31); }),
      "overflow"));
  EXPECT_NO_THROW(tensor_bytes(GgmlType::F32, std::int64_t{1} << 30, std::int64_t{1} << 30));
  // I2_S: n/4 fits but adding the 32-byte trailer is checked too (here it fits).
  EXPECT_EQ(tensor_bytes(GgmlType::I2_S, 128, std::int64_t{1} << 40), (std::uint64_t{1} << 45) + 32);
}

TEST(GgmlTypes, ShortDataIsAFormatError) {
  for (GgmlType t : kAllTypes) {
    const std::int64_t row = type_traits(t).block_elems * 2;
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(tensor_bytes(t, row, 3)) - 1, 0x55);
    std::vector<float> out(static_cast<std::size_t>(row * 3));
    const std::string msg =
        error_message<FormatError>([&] { dequantize(t, bytes.data(), bytes.size(), row, 3, out.data()); });
    EXPECT_TRUE(contains(msg, "needs")) << type_traits(t).name << ": " << msg;
    if (type_traits(t).ternary) {
      EXPECT_THROW(decode_ternary(t, bytes.data(), bytes.size(), row, 3), FormatError) << type_traits(t).name;
    }
  }
}

TEST(GgmlTypes, WrongKindOfTypeIsRejected) {
  const std::vector<std::uint8_t> bytes(1024, 0);
  EXPECT_THROW(decode_ternary(GgmlType::F16, bytes.data(), bytes.size(), 256, 1), FormatError);
  EXPECT_THROW(decode_ternary(GgmlType::Q8_0, bytes.data(), bytes.size(), 256, 1), FormatError);
  const std::vector<float> zeros(256, 0.0f);
  const TernaryTensor t = ternarize_absmean(zeros.data(), 256, 1);
  EXPECT_THROW(encode_ternary(GgmlType::F32, t), FormatError);
  EXPECT_THROW(encode_ternary(GgmlType::Q6_K, t), FormatError);
}

// ---------------------------------------------------------------------------------------------------------------
// fp16 / bf16

TEST(Fp16, DecodesSpecialValues) {
  EXPECT_EQ(fp16_to_f32(0x0000), 0.0f);
  EXPECT_TRUE(std::signbit(fp16_to_f32(0x8000)));
  EXPECT_EQ(fp16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(fp16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(fp16_to_f32(0x0001), std::ldexp(1.0f, -24));      // smallest subnormal
  EXPECT_EQ(fp16_to_f32(0x03ff), std::ldexp(1023.0f, -24));   // largest subnormal
  EXPECT_EQ(fp16_to_f32(0x0400), std::ldexp(1.0f, -14));      // smallest normal
  EXPECT_EQ(fp16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(fp16_to_f32(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(fp16_to_f32(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(fp16_to_f32(0x7e00)));
  EXPECT_TRUE(std::isnan(fp16_to_f32(0x7c01)));   // signalling NaN stays NaN
}

TEST(Fp16, ArrayEncodingEqualsTheScalarOneOnEveryKindOfValueAndTail) {
  std::vector<float> x = {0.0f, -0.0f, 1.0f, 65504.0f, 65519.0f, 65520.0f, 1e10f, -1e10f, 1e-8f, -3e-6f, 6.1e-5f,
                          1.0f + std::ldexp(1.0f, -11), 1.0f + 3 * std::ldexp(1.0f, -11),
                          std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::quiet_NaN(), std::bit_cast<float>(0x7f800001u),
                          std::numeric_limits<float>::denorm_min()};
  std::mt19937 rng(5);
  std::uniform_int_distribution<std::uint32_t> bits;
  for (int i = 0; i < 20000; ++i) x.push_back(std::bit_cast<float>(bits(rng)));   // every exponent, NaNs included
  std::uniform_real_distribution<float> small(-70000.0f, 70000.0f);
  for (int i = 0; i < 20000; ++i) x.push_back(small(rng) * std::ldexp(1.0f, -static_cast<int>(i % 40)));
  for (std::size_t n : {x.size(), std::size_t{7}, std::size_t{9}, std::size_t{1}}) {   // whole registers and tails
    std::vector<std::uint16_t> got(n);
    f32_to_fp16_array(x.data(), static_cast<std::int64_t>(n), got.data());
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(got[i], f32_to_fp16(x[i])) << "value bits " << std::bit_cast<std::uint32_t>(x[i]);
  }
}

TEST(Fp16, EncodesWithRoundToNearestEven) {
  EXPECT_EQ(f32_to_fp16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_fp16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);       // tie, even stays
  EXPECT_EQ(f32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);   // tie, odd rounds up
  EXPECT_EQ(f32_to_fp16(std::nextafter(1.0f + std::ldexp(1.0f, -11), 2.0f)), 0x3c01);
  EXPECT_EQ(f32_to_fp16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_fp16(65519.0f), 0x7bff);
  EXPECT_EQ(f32_to_fp16(65520.0f), 0x7c00);   // tie between 65504 and 65536 rounds to even = inf
  EXPECT_EQ(f32_to_fp16(1e10f), 0x7c00);
  EXPECT_EQ(f32_to_fp16(-std::numeric_limits<float>::infinity()), 0xfc00);
  const std::uint16_t nan = f32_to_fp16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
  EXPECT_NE(f32_to_fp16(std::bit_cast<float>(0x7f800001u)) & 0x03ff, 0);   // NaN whose payload is in the low bits
}

TEST(Fp16, EncodesSubnormalsAndUnderflow) {
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);   // tie to even: 0
  EXPECT_EQ(f32_to_fp16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(f32_to_fp16(std::ldexp(3.0f, -25)), 0x0002);      // 1.5 units: tie to even 2
  EXPECT_EQ(f32_to_fp16(std::ldexp(5.0f, -25)), 0x0002);      // 2.5 units: tie to even 2
  EXPECT_EQ(f32_to_fp16(std::ldexp(2047.0f, -25)), 0x0400);   // 1023.5 units carry to normal
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -30)), 0x0000);
  EXPECT_EQ(f32_to_fp16(-std::ldexp(1.0f, -30)), 0x8000);
  EXPECT_EQ(f32_to_fp16(std::numeric_limits<float>::denorm_min()), 0x0000);
}

TEST(Fp16, EveryHalfRoundTrips) {
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    const float f = fp16_to_f32(static_cast<std::uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(fp16_to_f32(f32_to_fp16(f)))) << h;
      continue;
    }
    ASSERT_EQ(f32_to_fp16(f), h) << "half 0x" << std::hex << h;
  }
}

// The output projection's int8 rows: every finite half, at scales where the product rounds to each int8 value,
// including exact ties, against the table decode and nearbyint (round half to even).
TEST(Fp16, ToInt8ScaledMatchesTheTableDecodeForEveryFiniteHalf) {
  std::vector<std::uint8_t> row;
  std::vector<std::uint16_t> halves;
  for (std::uint32_t h = 0; h < 0x10000; ++h)
    if ((h & 0x7c00) != 0x7c00) halves.push_back(static_cast<std::uint16_t>(h));
  row.resize(2 * halves.size());
  std::memcpy(row.data(), halves.data(), row.size());   // little-endian, as GGUF
  const float absmax = fp16_to_f32(fp16_absmax_bits(row.data(), static_cast<std::int64_t>(halves.size())));
  ASSERT_EQ(absmax, 65504.0f);
  std::vector<std::int8_t> q(halves.size());
  // 127 / 65504 is the scale the loader uses for this row; 0.5 and 1.5 make ties of small halves (checked where
  // they stay within 127); 0 zeroes.
  for (float inv : {127.0f / 65504.0f, 0.5f / 64.0f, 1.5f / 1024.0f, 0.0f}) {
    fp16_to_int8_scaled(row.data(), static_cast<std::int64_t>(halves.size()), inv, q.data());
    for (std::size_t k = 0; k < halves.size(); ++k) {
      const float scaled = fp16_to_f32(halves[k]) * inv;
      if (std::fabs(scaled) > 127.0f) continue;   // outside the contract: only the loader's scale covers the row
      const float want = std::nearbyint(scaled);
      ASSERT_EQ(q[k], static_cast<std::int8_t>(want)) << "half 0x" << std::hex << halves[k] << " inv " << inv;
    }
  }
  // Odd lengths (vector tails) and inf / NaN, which absmax must report.
  for (std::int64_t n : {1, 7, 9, 15, 17, 33}) {
    std::vector<std::uint8_t> tail(2 * static_cast<std::size_t>(n), 0);
    tail[2 * (n - 1) + 1] = 0x3c;   // the last half is 1.0
    EXPECT_EQ(fp16_absmax_bits(tail.data(), n), 0x3c00) << n;
    tail[2 * (n - 1) + 1] = 0xfe;   // a negative NaN
    EXPECT_GE(fp16_absmax_bits(tail.data(), n), 0x7c00) << n;
  }
}

TEST(Bf16, ConversionsAndEdgeCases) {
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);       // tie, even stays
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);   // tie, odd rounds up
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);   // rounds up to inf
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x00018000u)), 0x0002);   // subnormal tie, odd rounds up
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x00008000u)), 0x0000);   // subnormal tie, even stays
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
  const std::uint16_t nan = f32_to_bf16(std::bit_cast<float>(0x7f800001u));   // payload only in dropped bits
  EXPECT_TRUE(std::isnan(bf16_to_f32(nan)));
  EXPECT_EQ(bf16_to_f32(0x0001), std::bit_cast<float>(0x00010000u));
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    const float f = bf16_to_f32(static_cast<std::uint16_t>(b));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_bf16(f), b) << "bf16 0x" << std::hex << b;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Round trips

TEST(GgmlRoundTrip, FloatTypesOnOddShapes) {
  for (std::int64_t row : {1, 3, 7, 33}) {
    for (std::int64_t rows : {1, 3, 5}) {
      const auto n = static_cast<std::size_t>(row * rows);
      const std::vector<float> x = random_values(n, static_cast<std::uint32_t>(row * 10 + rows), -100.0f, 100.0f);
      EXPECT_EQ(decode(GgmlType::F32, encode(GgmlType::F32, x.data(), row, rows), row, rows), x);
      const std::vector<float> h = decode(GgmlType::F16, encode(GgmlType::F16, x.data(), row, rows), row, rows);
      const std::vector<float> b = decode(GgmlType::BF16, encode(GgmlType::BF16, x.data(), row, rows), row, rows);
      for (std::size_t i = 0; i < n; ++i) {
        EXPECT_EQ(h[i], fp16_to_f32(f32_to_fp16(x[i])));
        EXPECT_EQ(b[i], bf16_to_f32(f32_to_bf16(x[i])));
        EXPECT_NEAR(h[i], x[i], std::fabs(x[i]) * 0x1p-11f + 1e-7f);
        EXPECT_NEAR(b[i], x[i], std::fabs(x[i]) * 0x1p-8f + 1e-30f);
      }
    }
  }
}

TEST(GgmlRoundTrip, Q8_0ErrorIsHalfAStep) {
  for (std::int64_t row : {32, 96}) {
    for (std::int64_t rows : {1, 3}) {
      const auto n = static_cast<std::size_t>(row * rows);
      std::vector<float> x = random_values(n, static_cast<std::uint32_t>(row + rows), -3.0f, 3.0f);
      for (std::size_t i = 32; i < std::min<std::size_t>(64, n); ++i) x[i] = 0.0f;   // an all-zero block
      const std::vector<std::uint8_t> bytes = encode(GgmlType::Q8_0, x.data(), row, rows);
      ASSERT_EQ(bytes.size(), tensor_bytes(GgmlType::Q8_0, row, rows));
      const std::vector<float> y = decode(GgmlType::Q8_0, bytes, row, rows);
      for (std::size_t b = 0; b < n / 32; ++b) {
        float amax = 0.0f;
        for (std::size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[32 * b + j]));
        for (std::size_t j = 0; j < 32; ++j)
          EXPECT_LE(std::fabs(y[32 * b + j] - x[32 * b + j]), amax / 127.0f * 0.5f + amax * 1e-3f) << b << " " << j;
      }
    }
  }
}

TEST(GgmlRoundTrip, Q6_KErrorIsHalfASubBlockStep) {
  for (std::int64_t row : {256, 768}) {
    const std::int64_t rows = 3;
    const auto n = static_cast<std::size_t>(row * rows);
    std::vector<float> x = random_values(n, static_cast<std::uint32_t>(row), -1.0f, 1.0f);
    // Sub-blocks of very different magnitude, an all-zero sub-block, an all-zero super-block, tiny values.
    for (std::size_t i = 0; i < n; ++i) x[i] *= std::ldexp(1.0f, static_cast<int>((i / 16) % 11) - 5);
    for (std::size_t i = 16; i < 32; ++i) x[i] = 0.0f;
    for (std::size_t i = 256; i < 512; ++i) x[i] = 0.0f;
    for (std::size_t i = 512; i < 768; ++i) x[i] *= 1e-6f;
    const std::vector<std::uint8_t> bytes = encode(GgmlType::Q6_K, x.data(), row, rows);
    ASSERT_EQ(bytes.size(), tensor_bytes(GgmlType::Q6_K, row, rows));
    const std::vector<float> y = decode(GgmlType::Q6_K, bytes, row, rows);
    for (std::size_t b = 0; b < n / 256; ++b) {
      float block_max = 0.0f;
      for (std::size_t j = 0; j < 256; ++j) block_max = std::max(block_max, std::fabs(x[256 * b + j]));
      for (std::size_t s = 0; s < 16; ++s) {
        const std::size_t base = 256 * b + 16 * s;
        float amax = 0.0f;
        for (std::size_t j = 0; j < 16; ++j) amax = std::max(amax, std::fabs(x[base + j]));
        // Half of (sub-block step + one super-scale unit), plus fp16 subnormal granularity.
        const float bound = 0.5f * (amax / 31.0f + block_max / 127.0f / 31.0f * 1.002f) * 1.0001f + 0x1p-25f;
        for (std::size_t j = 0; j < 16; ++j)
          ASSERT_LE(std::fabs(y[base + j] - x[base + j]), bound) << "block " << b << " sub " << s << " j " << j;
      }
    }
  }
}

TEST(GgmlRoundTrip, TernaryTypesAreExact) {
  struct Case {
    GgmlType type;
    std::int64_t row, rows;
  };
  for (const Case c : {Case{GgmlType::I2_S, 128, 5}, Case{GgmlType::I2_S, 384, 3}, Case{GgmlType::TQ2_0, 256, 3},
                       Case{GgmlType::TQ2_0, 768, 5}, Case{GgmlType::TQ1_0, 256, 3}, Case{GgmlType::TQ1_0, 768, 5}}) {
    SCOPED_TRACE(std::string(type_traits(c.type).name) + " " + std::to_string(c.row) + "x" + std::to_string(c.rows));
    const auto n = static_cast<std::size_t>(c.row * c.rows);
    const std::vector<std::int8_t> codes = random_codes(n, static_cast<std::uint32_t>(c.row + c.rows));
    const bool per_tensor = c.type == GgmlType::I2_S;
    // fp16-exact scales; TQ types get a different one per block (and one all-zero block).
    std::vector<float> x(n);
    for (std::size_t i = 0; i < n; ++i) {
      const float s =
          per_tensor ? 0.0200042724609375f : fp16_to_f32(f32_to_fp16(0.01f * static_cast<float>(1 + i / 256)));
      x[i] = static_cast<float>(codes[i]) * s;
    }
    if (!per_tensor) std::fill(x.begin() + 256, x.begin() + 512 > x.end() ? x.end() : x.begin() + 512, 0.0f);

    const std::vector<std::uint8_t> bytes = encode(c.type, x.data(), c.row, c.rows);
    ASSERT_EQ(bytes.size(), tensor_bytes(c.type, c.row, c.rows));
    EXPECT_EQ(decode(c.type, bytes, c.row, c.rows), x);

    const TernaryTensor t = decode_ternary(c.type, bytes.data(), bytes.size(), c.row, c.rows);
    EXPECT_EQ(t.row_len, c.row);
    EXPECT_EQ(t.n_rows, c.rows);
    EXPECT_EQ(t.scale_block, per_tensor ? c.row * c.rows : 256);
    EXPECT_EQ(t.scales.size(), per_tensor ? 1u : n / 256);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(t.codes[i] * t.scales[i / t.scale_block], x[i]) << i;
    // Packing the decoded tensor again gives the same bytes.
    EXPECT_EQ(encode_ternary(c.type, t), bytes);
  }
}

TEST(GgmlRoundTrip, TernaryCodesSurviveEveryType) {
  // Codes only (one scale per tensor, which TQ types repeat per block).
  const std::int64_t row = 512, rows = 3;
  TernaryTensor t;
  t.row_len = row;
  t.n_rows = rows;
  t.codes = random_codes(static_cast<std::size_t>(row * rows), 7);
  t.scale_block = row * rows;
  t.scales = {0.75f};
  for (GgmlType type : {GgmlType::I2_S, GgmlType::TQ2_0, GgmlType::TQ1_0}) {
    const std::vector<std::uint8_t> bytes = encode_ternary(type, t);
    const TernaryTensor back = decode_ternary(type, bytes.data(), bytes.size(), row, rows);
    EXPECT_EQ(back.codes, t.codes) << type_traits(type).name;
    for (float s : back.scales) EXPECT_EQ(s, 0.75f);
  }
}

TEST(GgmlRoundTrip, Tq1_0EveryFiveTritValueAndFourTritValue) {
  // All 243 values of the qs[0] byte (weights 0, 32, 64, 96, 128) and all 81 of qh[3] (weights 243, 247, 251, 255).
  TernaryTensor t;
  t.row_len = 256;
  t.n_rows = 1;
  t.scale_block = 256;
  t.scales = {1.0f};
  for (int v = 0; v < 243; ++v) {
    t.codes.assign(256, 0);
    int rest = v;
    for (int n = 4; n >= 0; --n, rest /= 3)
      t.codes[static_cast<std::size_t>(32 * n)] = static_cast<std::int8_t>(rest % 3 - 1);
    if (v < 81) {
      rest = v;
      for (int n = 3; n >= 0; --n, rest /= 3)
        t.codes[static_cast<std::size_t>(243 + 4 * n)] = static_cast<std::int8_t>(rest % 3 - 1);
    }
    const std::vector<std::uint8_t> bytes = encode_ternary(GgmlType::TQ1_0, t);
    ASSERT_EQ(decode_ternary(GgmlType::TQ1_0, bytes.data(), bytes.size(), 256, 1).codes, t.codes) << v;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Hand-made blocks

TEST(GgmlKnownBytes, I2S) {
  // Two blocks (row length 256): 64 packed bytes, then the float32 scale, then padding to 32 bytes.
  std::vector<std::uint8_t> bytes(64 + 32, 0x55);   // 0x55: every code 1, weight 0
  bytes[0] = (2 << 6) | (1 << 4) | (0 << 2) | 2;    // weights 0, 32, 64, 96 -> +1, 0, -1, +1
  bytes[31] = (0 << 6) | (2 << 4) | (1 << 2) | 0;   // weights 31, 63, 95, 127 -> -1, +1, 0, -1
  bytes[32] = (0 << 6) | (1 << 4) | (1 << 2) | 1;   // block 1: weight 128 -> -1
  bytes[63] = (1 << 6) | (1 << 4) | (1 << 2) | 2;   // block 1: weight 255 -> +1
  const float scale = 0.5f;
  std::memcpy(bytes.data() + 64, &scale, 4);
  std::fill(bytes.begin() + 68, bytes.end(), 0);

  const TernaryTensor t = decode_ternary(GgmlType::I2_S, bytes.data(), bytes.size(), 256, 1);
  ASSERT_EQ(t.codes.size(), 256u);
  EXPECT_EQ(t.scale_block, 256);
  ASSERT_EQ(t.scales, std::vector<float>{0.5f});
  std::vector<int> expect(256, 0);
  expect[0] = 1, expect[32] = 0, expect[64] = -1, expect[96] = 1;
  expect[31] = -1, expect[63] = 1, expect[95] = 0, expect[127] = -1;
  expect[128] = -1, expect[255] = 1;
  for (int i = 0; i < 256; ++i)
    EXPECT_EQ(t.codes[static_cast<std::size_t>(i)], expect[static_cast<std::size_t>(i)]) << i;
  const std::vector<float> y = decode(GgmlType::I2_S, bytes, 256, 1);
  EXPECT_EQ(y[0], 0.5f);
  EXPECT_EQ(y[64], -0.5f);
  EXPECT_EQ(y[1], 0.0f);
  EXPECT_EQ(encode_ternary(GgmlType::I2_S, t), bytes);
}

TEST(GgmlKnownBytes, TQ2_0) {
  std::vector<std::uint8_t> bytes(66, 0x55);
  bytes[0] = 2 | (1 << 2) | (0 << 4) | (2 << 6);    // weights 0, 32, 64, 96 -> +1, 0, -1, +1 (low bits first)
  bytes[31] = 0 | (2 << 2) | (1 << 4) | (0 << 6);   // weights 31, 63, 95, 127 -> -1, +1, 0, -1
  bytes[32] = 0 | (1 << 2) | (1 << 4) | (2 << 6);   // weights 128, 160, 192, 224 -> -1, 0, 0, +1
  bytes[63] = 2 | (1 << 2) | (1 << 4) | (0 << 6);   // weights 159, 191, 223, 255 -> +1, 0, 0, -1
  bytes[64] = 0x00, bytes[65] = 0x34;               // d = 0.25
  const TernaryTensor t = decode_ternary(GgmlType::TQ2_0, bytes.data(), bytes.size(), 256, 1);
  EXPECT_EQ(t.scale_block, 256);
  ASSERT_EQ(t.scales, std::vector<float>{0.25f});
  std::vector<int> expect(256, 0);
  expect[0] = 1, expect[32] = 0, expect[64] = -1, expect[96] = 1;
  expect[31] = -1, expect[63] = 1, expect[95] = 0, expect[127] = -1;
  expect[128] = -1, expect[224] = 1, expect[159] = 1, expect[255] = -1;
  for (int i = 0; i < 256; ++i)
    EXPECT_EQ(t.codes[static_cast<std::size_t>(i)], expect[static_cast<std::size_t>(i)]) << i;
  EXPECT_EQ(decode(GgmlType::TQ2_0, bytes, 256, 1)[224], 0.25f);
  EXPECT_EQ(encode_ternary(GgmlType::TQ2_0, t), bytes);
}

TEST(GgmlKnownBytes, TQ1_0) {
  // Neutral bytes: 128 is five 1-trits (weight 0) in qs, 127 four 1-trits (plus a zero fifth trit) in qh.
  std::vector<std::uint8_t> bytes(54, 128);
  for (int m = 48; m < 52; ++m) bytes[static_cast<std::size_t>(m)] = 127;
  // Byte values are ceil(v * 256 / 243) of the base-3 number v, first weight most significant.
  bytes[0] = 184;                       // trits 2,0,1,1,0 (v = 174): weights 0, 32, 64, 96, 128
  bytes[31] = 82;                       // trits 0,2,2,1,2 (v = 77): weights 31, 63, 95, 127, 159
  bytes[32] = 106;                      // trits 1,0,2,0,1 (v = 100): weights 160, 176, 192, 208, 224
  bytes[47] = 255;                      // trits 2,2,2,2,2 (v = 242): weights 175, 191, 207, 223, 239
  bytes[48] = 48;                       // qh[0] trits 0,1,2,0 (v = 15 * 3): weights 240, 244, 248, 252
  bytes[51] = 231;                      // qh[3] trits 2,2,0,1 (v = 73 * 3): weights 243, 247, 251, 255
  bytes[52] = 0x00, bytes[53] = 0xb8;   // d = -0.5
  const TernaryTensor t = decode_ternary(GgmlType::TQ1_0, bytes.data(), bytes.size(), 256, 1);
  ASSERT_EQ(t.scales, std::vector<float>{-0.5f});
  std::vector<int> expect(256, 0);
  auto set = [&](std::initializer_list<int> weights, std::initializer_list<int> trits) {
    auto w = weights.begin();
    for (int trit : trits) expect[static_cast<std::size_t>(*w++)] = trit - 1;
  };
  set({0, 32, 64, 96, 128}, {2, 0, 1, 1, 0});
  set({31, 63, 95, 127, 159}, {0, 2, 2, 1, 2});
  set({160, 176, 192, 208, 224}, {1, 0, 2, 0, 1});
  set({175, 191, 207, 223, 239}, {2, 2, 2, 2, 2});
  set({240, 244, 248, 252}, {0, 1, 2, 0});
  set({243, 247, 251, 255}, {2, 2, 0, 1});
  for (int i = 0; i < 256; ++i)
    EXPECT_EQ(t.codes[static_cast<std::size_t>(i)], expect[static_cast<std::size_t>(i)]) << i;
  EXPECT_EQ(decode(GgmlType::TQ1_0, bytes, 256, 1)[0], -0.5f);
  EXPECT_EQ(encode_ternary(GgmlType::TQ1_0, t), bytes);
}

TEST(GgmlKnownBytes, Q8_0Decode) {
  std::vector<std::uint8_t> bytes(68, 0);
  bytes[0] = 0x00, bytes[1] = 0x38;   // d = 0.5
  bytes[2] = 127, bytes[3] = 0x80, bytes[4] = 0xff, bytes[33] = 5;
  bytes[34] = 0x00, bytes[35] = 0xc0;   // block 1: d = -2
  bytes[36] = 3;
  const std::vector<float> y = decode(GgmlType::Q8_0, bytes, 64, 1);
  EXPECT_EQ(y[0], 63.5f);
  EXPECT_EQ(y[1], -64.0f);
  EXPECT_EQ(y[2], -0.5f);
  EXPECT_EQ(y[3], 0.0f);
  EXPECT_EQ(y[31], 2.5f);
  EXPECT_EQ(y[32], -6.0f);
}

TEST(GgmlKnownBytes, Q8_0EncodeMatchesTheDefinition) {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[static_cast<std::size_t>(j)] = static_cast<float>(j - 16);
  const std::vector<std::uint8_t> bytes = encode(GgmlType::Q8_0, x.data(), 32, 1);
  const float d = 16.0f / 127.0f;
  EXPECT_EQ(bytes[0] | (bytes[1] << 8), f32_to_fp16(d));
  for (int j = 0; j < 32; ++j)
    EXPECT_EQ(static_cast<std::int8_t>(bytes[static_cast<std::size_t>(2 + j)]),
              static_cast<int>(std::round(static_cast<float>(j - 16) * (1.0f / d))))
        << j;
  EXPECT_EQ(static_cast<std::int8_t>(bytes[2]), -127);
  EXPECT_EQ(static_cast<std::int8_t>(bytes[18]), 0);
}

TEST(GgmlKnownBytes, Q6_KDecode) {
  std::vector<std::uint8_t> b(210, 0);
  std::uint8_t* ql = b.data();
  std::uint8_t* qh = b.data() + 128;
  auto* sc = reinterpret_cast<std::int8_t*>(b.data() + 192);
  sc[0] = 2, sc[2] = -3, sc[4] = 1, sc[6] = 4, sc[15] = 5;
  ql[0] = 0x3a;                                 // weight 0 low nibble 10, weight 64 low nibble 3
  ql[32] = 0x5f;                                // weight 32 low nibble 15, weight 96 low nibble 5
  qh[0] = 2 | (0 << 2) | (3 << 4) | (1 << 6);   // high bits of weights 0, 32, 64, 96
  ql[127] = 0xf0;                               // weight 255: second half, ql[64 + 32 + 31] high nibble
  qh[63] = 3 << 6;                              // weight 255: qh[32 + 31] bits 7:6
  b[208] = 0x00, b[209] = 0x38;                 // d = 0.5
  const std::vector<float> y = decode(GgmlType::Q6_K, b, 256, 1);
  EXPECT_EQ(y[0], 0.5f * 2 * (42 - 32));     // q = 10 | 2 << 4
  EXPECT_EQ(y[32], 0.5f * -3 * (15 - 32));   // q = 15 | 0 << 4, sub-block 2
  EXPECT_EQ(y[64], 0.5f * 1 * (51 - 32));    // q = 3 | 3 << 4, sub-block 4
  EXPECT_EQ(y[96], 0.5f * 4 * (21 - 32));    // q = 5 | 1 << 4, sub-block 6
  EXPECT_EQ(y[255], 0.5f * 5 * (63 - 32));   // sub-block 15
  EXPECT_EQ(y[1], 0.5f * 2 * -32);           // all-zero bits: q = -32
  EXPECT_EQ(y[16], 0.0f);                    // sub-block 1 has scale 0
  EXPECT_EQ(y[239], 0.0f);                   // sub-block 14 has scale 0
  EXPECT_EQ(y[240], 0.5f * 5 * -32);
}

// ---------------------------------------------------------------------------------------------------------------
// Errors

TEST(GgmlErrors, InvalidCodeThreeInI2S) {
  std::vector<std::uint8_t> bytes(32 + 32, 0x55);
  bytes[1] = 0x57;   // bits 1:0 of byte 1 = weight 97
  const std::string msg =
      error_message<FormatError>([&] { decode_ternary(GgmlType::I2_S, bytes.data(), bytes.size(), 128, 1); });
  EXPECT_TRUE(contains(msg, "invalid code 3")) << msg;
  EXPECT_TRUE(contains(msg, "element 97")) << msg;
  std::vector<float> out(128);
  EXPECT_THROW(dequantize(GgmlType::I2_S, bytes.data(), bytes.size(), 128, 1, out.data()), FormatError);
}

TEST(GgmlErrors, InvalidCodeThreeInTQ2_0) {
  std::vector<std::uint8_t> bytes(2 * 66, 0x55);
  bytes[66 + 34] = 0x57;   // block 1, second half, byte 2, bits 1:0: weight 256 + 130 = 386 (row 1, column 130)
  const std::string msg =
      error_message<FormatError>([&] { decode_ternary(GgmlType::TQ2_0, bytes.data(), bytes.size(), 256, 2); });
  EXPECT_TRUE(contains(msg, "element 386 (row 1, column 130)")) << msg;
}

TEST(GgmlErrors, NonFiniteTernaryScale) {
  std::vector<std::uint8_t> bytes(66, 0x55);
  bytes[64] = 0x00, bytes[65] = 0x7c;   // d = inf
  EXPECT_THROW(decode_ternary(GgmlType::TQ2_0, bytes.data(), bytes.size(), 256, 1), FormatError);
  std::vector<std::uint8_t> i2(64, 0x55);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(i2.data() + 32, &nan, 4);
  EXPECT_THROW(decode_ternary(GgmlType::I2_S, i2.data(), i2.size(), 128, 1), FormatError);
}

TEST(GgmlErrors, EncodeOfNonTernaryValuesNamesTheValue) {
  std::vector<float> x(512, 0.02f);
  for (std::size_t i = 0; i < x.size(); i += 3) x[i] = -0.02f;
  for (std::size_t i = 1; i < x.size(); i += 5) x[i] = 0.0f;
  x[5] = 0.02f * 1.0005f;   // within 0.1%: accepted
  for (GgmlType t : {GgmlType::I2_S, GgmlType::TQ2_0, GgmlType::TQ1_0}) EXPECT_NO_THROW(encode(t, x.data(), 256, 2));
  x[300] = 0.03f;
  for (GgmlType t : {GgmlType::I2_S, GgmlType::TQ2_0, GgmlType::TQ1_0}) {
    const std::string msg = error_message<FormatError>([&] { encode(t, x.data(), 256, 2); });
    EXPECT_TRUE(contains(msg, "element 300 (row 1, column 44)")) << msg;
  }
  x[300] = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(contains(error_message<FormatError>([&] { encode(GgmlType::TQ2_0, x.data(), 256, 2); }), "element 300"));
  // Different magnitudes in different 256-blocks: fine for TQ, not for I2_S's single scale.
  x[300] = 0.02f;
  for (std::size_t i = 256; i < 512; ++i) x[i] *= 4.0f;
  EXPECT_NO_THROW(encode(GgmlType::TQ2_0, x.data(), 256, 2));
  EXPECT_NO_THROW(encode(GgmlType::TQ1_0, x.data(), 256, 2));
  EXPECT_TRUE(contains(error_message<FormatError>([&] { encode(GgmlType::I2_S, x.data(), 256, 2); }),
                       "element 257"));   // 256 is 0
}

TEST(GgmlErrors, AllZeroGroupsGetScaleZero) {
  const std::vector<float> x(512, 0.0f);
  for (GgmlType t : {GgmlType::I2_S, GgmlType::TQ2_0, GgmlType::TQ1_0}) {
    const std::vector<std::uint8_t> bytes = encode(t, x.data(), 256, 2);
    for (float s : decode_ternary(t, bytes.data(), bytes.size(), 256, 2).scales) EXPECT_EQ(s, 0.0f);
    EXPECT_EQ(decode(t, bytes, 256, 2), x);
  }
}

TEST(GgmlErrors, EncodeTernaryValidatesTheTensor) {
  TernaryTensor t;
  t.row_len = 256;
  t.n_rows = 2;
  t.codes.assign(512, 1);
  t.scale_block = 256;
  t.scales = {1.0f, 2.0f};
  EXPECT_NO_THROW(encode_ternary(GgmlType::TQ2_0, t));
  // I2_S has one scale per tensor.
  EXPECT_TRUE(contains(error_message<FormatError>([&] { encode_ternary(GgmlType::I2_S, t); }), "one scale"));
  // A 256-block spanning two scale groups with different scales.
  TernaryTensor odd = t;
  odd.scale_block = 384;
  EXPECT_TRUE(contains(error_message<FormatError>([&] { encode_ternary(GgmlType::TQ1_0, odd); }), "block 1"));
  odd.scales = {1.0f, 1.0f};
  EXPECT_NO_THROW(encode_ternary(GgmlType::TQ1_0, odd));
  TernaryTensor bad = t;
  bad.codes[7] = 2;
  EXPECT_TRUE(contains(error_message<FormatError>([&] { encode_ternary(GgmlType::TQ2_0, bad); }), "element 7"));
  bad = t;
  bad.codes.pop_back();
  EXPECT_THROW(encode_ternary(GgmlType::TQ2_0, bad), FormatError);
  bad = t;
  bad.scales.push_back(1.0f);
  EXPECT_THROW(encode_ternary(GgmlType::TQ2_0, bad), FormatError);
  bad = t;
  bad.scale_block = 0;
  EXPECT_THROW(encode_ternary(GgmlType::TQ2_0, bad), FormatError);
  bad = t;
  bad.scales[1] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(encode_ternary(GgmlType::TQ2_0, bad), FormatError);
  bad = t;
  bad.scales[1] = 1e6f;   // not representable in fp16
  EXPECT_TRUE(contains(error_message<FormatError>([&] { encode_ternary(GgmlType::TQ2_0, bad); }), "fp16"));
  bad = t;
  bad.row_len = 200;
  EXPECT_THROW(encode_ternary(GgmlType::TQ2_0, bad), FormatError);
}

TEST(GgmlErrors, FloatEncodersRejectWhatTheyCannotStore) {
  std::vector<float> x(256, 1.0f);
  x[40] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(contains(error_message<FormatError>([&] { encode(GgmlType::Q8_0, x.data(), 256, 1); }), "element 40"));
  EXPECT_TRUE(contains(error_message<FormatError>([&] { encode(GgmlType::Q6_K, x.data(), 256, 1); }), "element 40"));
  x[40] = 1e30f;
  EXPECT_TRUE(contains(error_message<FormatError>([&] { encode(GgmlType::Q8_0, x.data(), 256, 1); }), "block 1"));
  EXPECT_THROW(encode(GgmlType::Q6_K, x.data(), 256, 1), FormatError);
  // F16 and BF16 store inf and NaN as they are.
  x[40] = std::numeric_limits<float>::infinity();
  EXPECT_EQ(decode(GgmlType::F16, encode(GgmlType::F16, x.data(), 256, 1), 256, 1)[40], x[40]);
  EXPECT_THROW(encode(GgmlType::Q8_0, x.data(), 48, 1), FormatError);   // not a whole block
}

// ---------------------------------------------------------------------------------------------------------------
// Absmean ternarization

TEST(Ternarize, AbsmeanOnKnownInput) {
  const std::vector<float> x = {1.0f, -0.5f, 0.25f, -0.25f, 0.0f, 2.0f, -1.0f, 0.1f};
  const TernaryTensor t = ternarize_absmean(x.data(), 4, 2);
  EXPECT_EQ(t.row_len, 4);
  EXPECT_EQ(t.n_rows, 2);
  EXPECT_EQ(t.scale_block, 8);
  ASSERT_EQ(t.scales.size(), 1u);
  EXPECT_FLOAT_EQ(t.scales[0], 5.1f / 8.0f);
  EXPECT_EQ(t.codes, (std::vector<std::int8_t>{1, -1, 0, 0, 0, 1, -1, 0}));
}

TEST(Ternarize, TiesGoToZeroAndTinyTensorsKeepAScale) {
  const std::vector<float> x = {3.0f, -3.0f, 1.0f, -1.0f};   // s = 2: 1 / 2 = 0.5 exactly
  const TernaryTensor t = ternarize_absmean(x.data(), 4, 1);
  EXPECT_EQ(t.scales, std::vector<float>{2.0f});
  EXPECT_EQ(t.codes, (std::vector<std::int8_t>{1, -1, 0, 0}));
  const std::vector<float> zeros(8, 0.0f);
  const TernaryTensor z = ternarize_absmean(zeros.data(), 8, 1);
  EXPECT_EQ(z.scales, std::vector<float>{1e-5f});
  EXPECT_EQ(z.codes, std::vector<std::int8_t>(8, 0));
  std::vector<float> bad = x;
  bad[2] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(contains(error_message<FormatError>([&] { ternarize_absmean(bad.data(), 2, 2); }), "row 1, column 0"));
  EXPECT_THROW(ternarize_absmean(x.data(), 0, 1), FormatError);
}

TEST(Ternarize, PacksIntoEveryTernaryType) {
  const std::int64_t row = 768, rows = 3;
  const std::vector<float> x = random_values(static_cast<std::size_t>(row * rows), 11);
  const TernaryTensor t = ternarize_absmean(x.data(), row, rows);
  for (GgmlType type : {GgmlType::I2_S, GgmlType::TQ2_0, GgmlType::TQ1_0}) {
    const std::vector<float> y = decode(type, encode_ternary(type, t), row, rows);
    const float s = type == GgmlType::I2_S ? t.scales[0] : fp16_to_f32(f32_to_fp16(t.scales[0]));
    for (std::size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], static_cast<float>(t.codes[i]) * s) << i;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Files written by bitnet.cpp (I2_S) and llama.cpp (TQ2_0, TQ1_0) against their F16 sources

std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("BITRUN_SHARED_DIR"); env != nullptr && *env != '\0') return env;
#ifdef BITRUN_SOURCE_DIR
  return std::filesystem::path(BITRUN_SOURCE_DIR) / ".." / "shared";
#else
  return {};
#endif
}

// Every ternary tensor of `quantized` must equal the same-named tensor of `source`, whose values are exactly 0 or
// +-0.02 (rounded to fp16): identical signs, and a scale of fp16(0.02) (0 allowed only for an all-zero scale group).
void expect_matches_f16_source(const std::string& quantized, const std::string& source, GgmlType expected_type) {
  const std::filesystem::path dir = shared_dir() / "fixtures";
  if (!std::filesystem::exists(dir / quantized) || !std::filesystem::exists(dir / source))
    GTEST_SKIP() << "fixtures not found in " << dir << " (set BITRUN_SHARED_DIR to the shared/ directory)";
  const GgufFile q = GgufFile::open(dir / quantized);
  const GgufFile f = GgufFile::open(dir / source);
  const float s16 = fp16_to_f32(f32_to_fp16(0.02f));
  int ternary_tensors = 0;
  for (const GgufTensorInfo& info : q.tensors()) {
    if (!type_traits(info.type).ternary) continue;
    SCOPED_TRACE(quantized + ": " + info.name);
    EXPECT_EQ(info.type, expected_type);
    ++ternary_tensors;
    const GgufTensorInfo* src = f.find_tensor(info.name);
    ASSERT_NE(src, nullptr) << info.name << " missing from " << source;
    ASSERT_EQ(src->ne, info.ne);
    const std::int64_t row = info.row_len(), rows = info.n_rows();
    const TernaryTensor t = decode_ternary(info.type, q.tensor_data(info), info.bytes, row, rows);
    std::vector<float> ref(static_cast<std::size_t>(row * rows));
    dequantize(src->type, f.tensor_data(*src), src->bytes, row, rows, ref.data());

    std::vector<bool> group_has_nonzero(t.scales.size(), false);
    std::int64_t mismatches = 0, first = -1, nonzero = 0;
    for (std::size_t i = 0; i < ref.size(); ++i) {
      const int sign = ref[i] > 0.0f ? 1 : (ref[i] < 0.0f ? -1 : 0);
      if (sign != 0) ++nonzero, group_has_nonzero[i / static_cast<std::size_t>(t.scale_block)] = true;
      if (std::fabs(ref[i]) != 0.0f && std::fabs(ref[i]) != s16)
        ++mismatches, first = first < 0 ? static_cast<std::int64_t>(i) : first;
      if (t.codes[i] != sign) ++mismatches, first = first < 0 ? static_cast<std::int64_t>(i) : first;
    }
    EXPECT_EQ(mismatches, 0) << "first mismatch at element " << first;
    EXPECT_GT(nonzero, static_cast<std::int64_t>(ref.size()) / 4);
    for (std::size_t g = 0; g < t.scales.size(); ++g) {
      if (!group_has_nonzero[g]) continue;
      ASSERT_NEAR(t.scales[g], 0.02f, 0.02f * 0x1p-10f) << "scale group " << g;
      // The engines store max|W| (I2_S as float32, TQ as fp16 d): exactly the source's magnitude.
      EXPECT_EQ(t.scales[g], s16) << "scale group " << g;
    }
  }
  // 2 layers x 7 projections (q, k, v, o, gate, up, down).
  EXPECT_EQ(ternary_tensors, 14) << quantized;
}

TEST(GgmlFixtures, I2SFromBitnetCppMatchesF16Source) {
  expect_matches_f16_source("tiny-b158-i2_s.gguf", "tiny-b158-f16.gguf", GgmlType::I2_S);
}

TEST(GgmlFixtures, TQ2_0FromLlamaCppMatchesF16Source) {
  expect_matches_f16_source("tiny-bitnet-tq2_0.gguf", "tiny-bitnet-f16.gguf", GgmlType::TQ2_0);
}

TEST(GgmlFixtures, TQ1_0FromLlamaCppMatchesF16Source) {
  expect_matches_f16_source("tiny-bitnet-tq1_0.gguf", "tiny-bitnet-f16.gguf", GgmlType::TQ1_0);
}

}   // namespace
}   // namespace bitrun
