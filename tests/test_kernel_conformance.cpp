// Every kernel of every backend against the scalar reference, on random data with odd shapes and tails.
// A backend this CPU cannot run is skipped with a message.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <limits>
#include <random>
#include <tuple>

#include "bitrun/base/error.hpp"
#include "bitrun/gguf/ggml_types.hpp"
#include "bitrun/plugin/plugin_host.hpp"
#include "bitrun/model/ternary_pack.hpp"
#include "test_support.hpp"

namespace bitrun {
namespace {

class KernelConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    // "avx2-without-avx_vnni": the AVX2 backend as on a CPU without AVX-VNNI, so both of its matmul paths are
    // checked on a CPU that has it.
    static PluginHost host({BITRUN_TEST_PLUGIN_DIR}, detect_cpu());
    static PluginHost host_without_vnni({BITRUN_TEST_PLUGIN_DIR},
                                        detect_cpu().without(feature_bit(CpuFeature::AVX_VNNI)));
    const bool without_vnni = GetParam() == "avx2-without-avx_vnni";
    PluginHost& h = without_vnni ? host_without_vnni : host;
    const std::string name = without_vnni ? "avx2" : GetParam();
    const PluginRecord* record = h.find(PluginKind::Backend, name);
    ASSERT_NE(record, nullptr) << "plugin " << name << " was not built";
    if (record->score <= 0) GTEST_SKIP() << "backend " << name << " cannot run on this CPU: "
                                         << record->skip_reason(h.cpu());
    backend_ = h.create_backend(h.choose_backend(name), 2);
    reference_ = make_reference_backend(BackendOptions{1, detect_cpu()});
  }
  std::unique_ptr<Backend> backend_, reference_;
  std::mt19937 rng_{1234};

  std::vector<float> random_floats(std::size_t n, float scale) {
    std::normal_distribution<float> dist(0.0f, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng_);
    return v;
  }
  std::vector<std::int8_t> random_codes(std::size_t n) {
    std::uniform_int_distribution<int> dist(-1, 1);
    std::vector<std::int8_t> v(n);
    for (auto& c : v) c = static_cast<std::int8_t>(dist(rng_));
    return v;
  }
};

// Row lengths around every block size the backends use (32, 64, 128, 256) plus real model widths.
const std::int64_t kCols[] = {1, 7, 31, 32, 33, 64, 100, 127, 128, 129, 255, 256, 257, 383, 512, 1000, 2560, 6912};
const std::int64_t kTokens[] = {1, 2, 3, 4, 5, 8, 9};

// Activation scale groups: per row (bitnet.cpp), per 256 and per 512 elements (llama.cpp's TQ arithmetic).
const std::int64_t kScaleBlocks[] = {0, 256, 512};

TEST_P(KernelConformance, QuantizeActivationsIsBitExact) {
  for (std::int64_t cols : kCols) {
    for (std::int64_t rows : {1, 3}) {
      const std::int64_t stride = cols + 3;   // rows not contiguous: the kernel must honour x_stride
      auto x = random_floats(static_cast<std::size_t>(rows * stride), 2.0f);
      x[0] = 0.5f * 127.0f / 127.0f;            // exercise exact halves after scaling now and then
      for (std::int64_t block : kScaleBlocks) {
      QuantizedActivations got, want;
      backend_->quantize_activations(x.data(), rows, cols, stride, got, block);
      reference_->quantize_activations(x.data(), rows, cols, stride, want, block);
      ASSERT_EQ(got.stride, want.stride);
      ASSERT_EQ(got.q, want.q) << "cols " << cols;
      ASSERT_EQ(got.sum, want.sum) << "cols " << cols;
      ASSERT_EQ(got.scale, want.scale) << "cols " << cols;
      ASSERT_EQ(got.scale.size(), static_cast<std::size_t>(rows * (block ? (cols + block - 1) / block : 1)));
      }
    }
  }
  // An all-zero row must not divide by zero.
  std::vector<float> zeros(300, 0.0f);
  QuantizedActivations q;
  backend_->quantize_activations(zeros.data(), 1, 300, 300, q);
  EXPECT_EQ(q.sum[0], 0);
  EXPECT_TRUE(std::isfinite(q.scale[0]));
}

TEST_P(KernelConformance, TernaryMatmulMatchesReferenceExactly) {
  for (std::int64_t cols : kCols) {
    for (std::int64_t rows : {1, 3, 17, 64}) {
      auto codes = random_codes(static_cast<std::size_t>(rows * cols));
      auto scales = random_floats(static_cast<std::size_t>(rows), 1.0f);
      TernaryMatrixView w{rows, cols, codes.data(), scales.data()};
      auto packed = backend_->pack_ternary(w);
      auto packed_ref = reference_->pack_ternary(w);
      for (std::int64_t tokens : kTokens) {
        auto x = random_floats(static_cast<std::size_t>(tokens * cols), 1.0f);
        for (std::int64_t block : kScaleBlocks) {
        QuantizedActivations q;
        reference_->quantize_activations(x.data(), tokens, cols, cols, q, block);
        const std::int64_t y_stride = rows + 5;
        std::vector<float> got(static_cast<std::size_t>(tokens * y_stride), -1.0f), want = got;
        backend_->ternary_matmul(*packed, q, got.data(), y_stride);
        reference_->ternary_matmul(*packed_ref, q, want.data(), y_stride);
        // Integer dot products and the same float operations in the same order: results are identical, and
        // the padding between rows of y is untouched.
        ASSERT_EQ(got, want) << "rows " << rows << " cols " << cols << " tokens " << tokens << " block " << block;
        }
      }
    }
  }
}

// The small-batch path (tiles of several weight rows and tokens reduced together): every token count a block
// diffusion step or a small batch gives, with row counts that leave partial row tiles (83 rows: whole tiles of four
// row groups, as one and two tokens take, then single groups, the last of them partial, with 8 and 16 lanes).
TEST_P(KernelConformance, SmallBatchMatmulsMatchReferenceExactly) {
  for (std::int64_t cols : {128, 383, 2560}) {
    for (std::int64_t rows : {5, 20, 83}) {
      auto codes = random_codes(static_cast<std::size_t>(rows * cols));
      auto scales = random_floats(static_cast<std::size_t>(rows), 1.0f);
      TernaryMatrixView w{rows, cols, codes.data(), scales.data()};
      auto packed = backend_->pack_ternary(w);
      auto packed_ref = reference_->pack_ternary(w);
      std::vector<std::int8_t> wide(codes.size());
      std::uniform_int_distribution<int> value(-127, 127);
      for (auto& v : wide) v = static_cast<std::int8_t>(value(rng_));
      const TernaryMatrixView w8{rows, cols, wide.data(), scales.data()};
      auto int8 = backend_->pack_int8(w8);
      auto int8_ref = reference_->pack_int8(w8);
      for (std::int64_t tokens = 1; tokens <= 33; ++tokens) {
        auto x = random_floats(static_cast<std::size_t>(tokens * cols), 1.0f);
        QuantizedActivations q;
        reference_->quantize_activations(x.data(), tokens, cols, cols, q);
        std::vector<float> got(static_cast<std::size_t>(tokens * rows), -1.0f), want = got;
        backend_->ternary_matmul(*packed, q, got.data(), rows);
        reference_->ternary_matmul(*packed_ref, q, want.data(), rows);
        ASSERT_EQ(got, want) << "rows " << rows << " cols " << cols << " tokens " << tokens;
        // The same rows as int8 weights (the output projection's path).
        std::fill(got.begin(), got.end(), -1.0f);
        want = got;
        backend_->int8_matmul(*int8, q, got.data(), rows);
        reference_->int8_matmul(*int8_ref, q, want.data(), rows);
        ASSERT_EQ(got, want) << "int8 rows " << rows << " cols " << cols << " tokens " << tokens;
      }
    }
  }
}

// A prompt-sized batch runs in token chunks that fit in L2 (packed_matmul.hpp: 72 tokens of a 6912-wide row), so
// 150 tokens take two whole chunks and a partial one, over row tiles that end in a partial group.
TEST_P(KernelConformance, PromptBatchesSpanningTokenChunksMatchReferenceExactly) {
  const std::int64_t rows = 40, cols = 6912, tokens = 150;
  auto codes = random_codes(static_cast<std::size_t>(rows * cols));
  auto scales = random_floats(static_cast<std::size_t>(rows), 1.0f);
  TernaryMatrixView w{rows, cols, codes.data(), scales.data()};
  auto packed = backend_->pack_ternary(w);
  auto packed_ref = reference_->pack_ternary(w);
  auto x = random_floats(static_cast<std::size_t>(tokens * cols), 1.0f);
  for (std::int64_t block : kScaleBlocks) {
    QuantizedActivations q;
    reference_->quantize_activations(x.data(), tokens, cols, cols, q, block);
    for (int threads : {1, 2}) {
      backend_->set_threads(threads);
      std::vector<float> got(static_cast<std::size_t>(tokens * rows), -1.0f), want = got;
      backend_->ternary_matmul(*packed, q, got.data(), rows);
      reference_->ternary_matmul(*packed_ref, q, want.data(), rows);
      ASSERT_EQ(got, want) << "block " << block << " threads " << threads;
    }
  }
}

TEST_P(KernelConformance, TernaryMatmulLongRowsDoNotOverflow) {
  // Worst case for int16 intermediates: every weight +1 and every activation at +127 over a 6912-wide row.
  const std::int64_t rows = 5, cols = 6912;
  std::vector<std::int8_t> codes(static_cast<std::size_t>(rows * cols), 1);
  std::vector<float> scales(rows, 1.0f);
  std::vector<float> x(cols, 3.0f);
  QuantizedActivations q;
  reference_->quantize_activations(x.data(), 1, cols, cols, q);
  auto packed = backend_->pack_ternary(TernaryMatrixView{rows, cols, codes.data(), scales.data()});
  std::vector<float> y(rows);
  backend_->ternary_matmul(*packed, q, y.data(), rows);
  for (float v : y) EXPECT_FLOAT_EQ(v, 127.0f * cols * q.scale[0]);
}

// I2_S weights as the loader hands them over: codes through read_row plus the raw I2_S rows, which a SIMD backend
// repacks directly. Packed both ways (and by the reference), the matrix must compute the same products.
TEST_P(KernelConformance, PackingFromI2sMatchesPackingFromCodes) {
  for (std::int64_t cols : {128, 256, 384, 640, 2560}) {
    for (std::int64_t rows : {1, 3, 17}) {
      TernaryTensor t{cols, rows, random_codes(static_cast<std::size_t>(rows * cols)), rows * cols, {0.5f}};
      const std::vector<std::uint8_t> i2s = encode_ternary(GgmlType::I2_S, t);
      auto scales = random_floats(static_cast<std::size_t>(rows), 1.0f);
      TernaryMatrixView from_codes{rows, cols, t.codes.data(), scales.data()};
      TernaryMatrixView from_i2s{rows, cols, nullptr, scales.data(), [&](std::int64_t r, std::int8_t* out) {
                                   decode_ternary_rows(GgmlType::I2_S, i2s.data(), i2s.size(), cols, rows, r, 1, out);
                                 }};
      from_i2s.i2s = i2s.data();
      auto packed_codes = backend_->pack_ternary(from_codes);
      auto packed_i2s = backend_->pack_ternary(from_i2s);
      auto packed_ref = reference_->pack_ternary(from_i2s);
      for (std::int64_t tokens : {1, 5}) {
        auto x = random_floats(static_cast<std::size_t>(tokens * cols), 1.0f);
        QuantizedActivations q;
        reference_->quantize_activations(x.data(), tokens, cols, cols, q);
        std::vector<float> got(static_cast<std::size_t>(tokens * rows)), want(got.size()), ref(got.size());
        backend_->ternary_matmul(*packed_i2s, q, got.data(), rows);
        backend_->ternary_matmul(*packed_codes, q, want.data(), rows);
        reference_->ternary_matmul(*packed_ref, q, ref.data(), rows);
        ASSERT_EQ(got, want) << "rows " << rows << " cols " << cols << " tokens " << tokens;
        ASSERT_EQ(got, ref) << "rows " << rows << " cols " << cols << " tokens " << tokens;
      }
      // An invalid code in the last row: the error is the decoder's, with the weight's position.
      std::vector<std::uint8_t> bad = i2s;
      bad[static_cast<std::size_t>((rows - 1) * cols / 4 + 5)] = 0xff;
      from_i2s.i2s = bad.data();
      from_i2s.read_row = [&](std::int64_t r, std::int8_t* out) {
        decode_ternary_rows(GgmlType::I2_S, bad.data(), bad.size(), cols, rows, r, 1, out);
      };
      EXPECT_NE(test::error_message<FormatError>([&] { backend_->pack_ternary(from_i2s); }).find("invalid code 3"),
                std::string::npos);
    }
  }
}

// The interleaved packer's two sources, byte for byte, for both group sizes (so the AVX-512 layout is checked on CPUs
// that cannot run it): the I2_S bytes gathered as they are against codes encoded, on rows of 1..5 I2_S blocks and
// row counts that leave part of the last group empty; and one weight checked against the layout's definition.
TEST(TernaryPack, InterleavedGroupFromI2sEqualsFromCodes) {
  std::mt19937 rng(99);
  std::uniform_int_distribution<int> code(-1, 1);
  for (std::int64_t cols = 128; cols <= 5 * 128; cols += 128) {
    for (std::int64_t rows : {3, 16, 21}) {
      TernaryTensor t{cols, rows, std::vector<std::int8_t>(static_cast<std::size_t>(rows * cols)), rows * cols, {1.0f}};
      for (auto& c : t.codes) c = static_cast<std::int8_t>(code(rng));
      const std::vector<std::uint8_t> i2s = encode_ternary(GgmlType::I2_S, t);
      std::vector<float> scales(static_cast<std::size_t>(rows), 1.0f);
      TernaryMatrixView from_codes{rows, cols, t.codes.data(), scales.data()};
      TernaryMatrixView from_i2s = from_codes;
      from_i2s.i2s = i2s.data();
      for (std::int64_t group_rows : {8, 16}) {
        const auto bytes = static_cast<std::size_t>(interleaved_group_bytes(cols, group_rows, false));
        const auto buffer_bytes = static_cast<std::size_t>(interleaved_pack_buffer_bytes(cols, group_rows, false));
        std::vector<std::uint8_t> buffer(buffer_bytes);
        for (std::int64_t first = 0; first < rows; first += group_rows) {
          std::vector<std::uint8_t> direct(bytes, 0xaa), encoded(bytes, 0xbb);
          pack_interleaved_group(from_i2s, first, group_rows, false, 0, buffer.data(), direct.data());
          pack_interleaved_group(from_codes, first, group_rows, false, 0, buffer.data(), encoded.data());
          ASSERT_EQ(direct, encoded) << "cols " << cols << " rows " << rows << " group " << group_rows;
          // Weight k of row first + r: block b = k / 128, I2_S byte m = k % 32 in dword d = m / 4, field k % 128 / 32.
          const std::int64_t r = rows - 1 - first < group_rows ? rows - 1 - first : group_rows - 1, k = cols - 37;
          const std::int64_t b = k / 128, m = k % 32, f = k % 128 / 32;
          const std::uint8_t byte = direct[static_cast<std::size_t>((b * 8 + m / 4) * 4 * group_rows + 4 * r + m % 4)];
          EXPECT_EQ(((byte >> (6 - 2 * f)) & 3) - 1, t.codes[static_cast<std::size_t>((first + r) * cols + k)]);
        }
      }
    }
  }
}

TEST_P(KernelConformance, Int8MatmulMatchesReferenceExactly) {
  std::uniform_int_distribution<int> value(-127, 127);
  for (std::int64_t cols : kCols) {
    for (std::int64_t rows : {1, 5, 33}) {
      std::vector<std::int8_t> w(static_cast<std::size_t>(rows * cols));
      for (auto& v : w) v = static_cast<std::int8_t>(value(rng_));
      auto scales = random_floats(static_cast<std::size_t>(rows), 1.0f);
      TernaryMatrixView view{rows, cols, w.data(), scales.data()};
      auto packed = backend_->pack_int8(view);
      auto packed_ref = reference_->pack_int8(view);
      for (std::int64_t tokens : {1, 4, 6}) {
        auto x = random_floats(static_cast<std::size_t>(tokens * cols), 1.0f);
        for (std::int64_t block : kScaleBlocks) {
          QuantizedActivations q;
          reference_->quantize_activations(x.data(), tokens, cols, cols, q, block);
          std::vector<float> got(static_cast<std::size_t>(tokens * rows), -1.0f), want = got;
          backend_->int8_matmul(*packed, q, got.data(), rows);
          reference_->int8_matmul(*packed_ref, q, want.data(), rows);
          ASSERT_EQ(got, want) << "rows " << rows << " cols " << cols << " tokens " << tokens << " block " << block;
        }
      }
    }
  }
  // Extremes: every weight -127 against activations of +-127 over a long row (int16 pair sums at their limit).
  const std::int64_t cols = 6912;
  std::vector<std::int8_t> w(cols, -127);
  std::vector<float> one(1, 1.0f), x(cols);
  for (std::int64_t k = 0; k < cols; ++k) x[static_cast<std::size_t>(k)] = k % 3 ? 5.0f : -5.0f;
  QuantizedActivations q;
  reference_->quantize_activations(x.data(), 1, cols, cols, q);
  std::vector<float> got(1), want(1);
  backend_->int8_matmul(*backend_->pack_int8({1, cols, w.data(), one.data()}), q, got.data(), 1);
  reference_->int8_matmul(*reference_->pack_int8({1, cols, w.data(), one.data()}), q, want.data(), 1);
  EXPECT_EQ(got, want);
  // A ternary-packed matrix is not an int8 one.
  std::vector<std::int8_t> codes(64, 1);
  auto ternary = backend_->pack_ternary({1, 64, codes.data(), one.data()});
  if (backend_->name() != "reference") {
    EXPECT_THROW(backend_->int8_matmul(*ternary, q, got.data(), 1), Error);
  }
}

// Random Q6_K rows: any bytes are valid values and scales; d finite, of mixed sign and size.
std::vector<std::uint8_t> random_q6_k(std::mt19937& rng, std::int64_t rows, std::int64_t cols) {
  std::vector<std::uint8_t> blocks(static_cast<std::size_t>(rows * cols / 256 * 210));
  std::uniform_int_distribution<int> byte(0, 255);
  std::normal_distribution<float> d(0.0f, 0.01f);
  for (std::size_t b = 0; b < blocks.size(); b += 210) {
    for (std::size_t i = 0; i < 208; ++i) blocks[b + i] = static_cast<std::uint8_t>(byte(rng));
    const std::uint16_t h = f32_to_fp16(d(rng));
    std::memcpy(&blocks[b + 208], &h, 2);
  }
  return blocks;
}

TEST_P(KernelConformance, Q6kMatmulMatchesReferenceExactly) {
  for (std::int64_t cols : {256, 512, 2560}) {
    for (std::int64_t rows : {1, 5, 16, 17, 33}) {
      const std::vector<std::uint8_t> blocks = random_q6_k(rng_, rows, cols);
      const Q6kMatrixView view{rows, cols, blocks.data()};
      auto packed = backend_->pack_q6_k(view);
      auto packed_ref = reference_->pack_q6_k(view);
      for (std::int64_t tokens = 1; tokens <= (rows == 17 ? 33 : 9); ++tokens) {
        auto x = random_floats(static_cast<std::size_t>(tokens * cols), 1.0f);
        for (std::int64_t block : kScaleBlocks) {
          if (block > cols) continue;
          QuantizedActivations q;
          reference_->quantize_activations(x.data(), tokens, cols, cols, q, block);
          std::vector<float> got(static_cast<std::size_t>(tokens * rows + 3), -1.0f), want = got;
          backend_->q6_k_matmul(*packed, q, got.data(), rows);
          reference_->q6_k_matmul(*packed_ref, q, want.data(), rows);
          ASSERT_EQ(got, want) << "rows " << rows << " cols " << cols << " tokens " << tokens << " block " << block;
        }
      }
    }
  }
}

// The reference itself: its integer formulation equals the dequantized weights times the dequantized activations.
TEST(Q6kReference, EqualsTheDequantizedProduct) {
  std::mt19937 rng(7);
  const std::int64_t rows = 4, cols = 768, tokens = 2;
  const std::vector<std::uint8_t> blocks = random_q6_k(rng, rows, cols);
  std::vector<float> w(static_cast<std::size_t>(rows * cols));
  dequantize(GgmlType::Q6_K, blocks.data(), blocks.size(), cols, rows, w.data());
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(tokens * cols));
  for (auto& v : x) v = dist(rng);
  auto reference = make_reference_backend(BackendOptions{1, detect_cpu()});
  for (std::int64_t block : {0, 256}) {
    QuantizedActivations q;
    reference->quantize_activations(x.data(), tokens, cols, cols, q, block);
    std::vector<float> y(static_cast<std::size_t>(tokens * rows));
    reference->q6_k_matmul(*reference->pack_q6_k({rows, cols, blocks.data()}), q, y.data(), rows);
    for (std::int64_t t = 0; t < tokens; ++t)
      for (std::int64_t m = 0; m < rows; ++m) {
        double want = 0, magnitude = 0;
        for (std::int64_t k = 0; k < cols; ++k) {
          const double a = q.row(t)[k] * q.scale[static_cast<std::size_t>(t * q.groups() + (block ? k / block : 0))];
          want += w[static_cast<std::size_t>(m * cols + k)] * a;
          magnitude += std::fabs(w[static_cast<std::size_t>(m * cols + k)] * a);
        }
        EXPECT_NEAR(y[static_cast<std::size_t>(t * rows + m)], want, 1e-5 * magnitude) << "t " << t << " m " << m;
      }
  }
}

TEST_P(KernelConformance, Q6kMatmulExtremesAndErrors) {
  // Every value at 0 or 63 (weights -32 / +31), scales -128, activations +-127 over a long row: the integer dot at
  // its widest.
  const std::int64_t cols = 6912, rows = 3;
  std::vector<std::uint8_t> blocks(static_cast<std::size_t>(rows * cols / 256 * 210));
  for (std::size_t b = 0; b < blocks.size(); b += 210) {
    const std::uint8_t fill = (b / 210) % 2 ? 0xff : 0x00;
    std::memset(&blocks[b], fill, 192);          // values
    std::memset(&blocks[b + 192], 0x80, 16);     // scales -128
    const std::uint16_t h = f32_to_fp16(0.5f);
    std::memcpy(&blocks[b + 208], &h, 2);
  }
  std::vector<float> x(cols);
  for (std::int64_t k = 0; k < cols; ++k) x[static_cast<std::size_t>(k)] = (k / 256) % 2 ? 5.0f : -5.0f;
  QuantizedActivations q;
  reference_->quantize_activations(x.data(), 1, cols, cols, q);
  std::vector<float> got(rows), want(rows);
  backend_->q6_k_matmul(*backend_->pack_q6_k({rows, cols, blocks.data()}), q, got.data(), rows);
  reference_->q6_k_matmul(*reference_->pack_q6_k({rows, cols, blocks.data()}), q, want.data(), rows);
  EXPECT_EQ(got, want);
  // 27 blocks of +-(31 * -128 * 127 * 256 / 2 + ...) alternate: not zero, so a dropped sign or offset would show.
  EXPECT_NE(want[0], 0.0f);
  // A block scale that is inf or NaN is named; so is a matrix of another kind or a width that does not match.
  std::vector<std::uint8_t> bad = blocks;
  const std::uint16_t inf = 0x7c00;
  std::memcpy(&bad[210 * 30 + 208], &inf, 2);   // row 1 (27 blocks a row), block 3
  const std::string message = test::error_message<FormatError>([&] { backend_->pack_q6_k({rows, cols, bad.data()}); });
  EXPECT_NE(message.find("row 1"), std::string::npos) << message;
  EXPECT_THROW(backend_->pack_q6_k({rows, 100, blocks.data()}), Error);
  std::vector<std::int8_t> codes(cols, 1);
  std::vector<float> one(1, 1.0f);
  auto ternary = backend_->pack_ternary({1, cols, codes.data(), one.data()});
  EXPECT_THROW(backend_->q6_k_matmul(*ternary, q, got.data(), 1), Error);
  // 16 rows (whole groups on both ISAs) take Q6_K's 210 bytes per 256 weights plus 2 for d as float.
  EXPECT_EQ(backend_->pack_q6_k({16, 512, blocks.data()})->bytes(), 16u * 2u * 212u);
  auto small = backend_->pack_q6_k({1, 256, blocks.data()});
  EXPECT_THROW(backend_->q6_k_matmul(*small, q, got.data(), 1), Error);
}

// A random layer of cached K/V in `type`, rows `stride` values apart (wider than n_kv * head_dim, so a kernel
// must honour the view's row stride). Each (position, KV head) row gets its own magnitude, so reading another
// row's int8 scale shows in the result.
struct CachedLayer {
  KvCacheType type;
  std::vector<std::uint16_t> k16, v16;
  std::vector<std::int8_t> k8, v8;
  std::vector<float> k_scale, v_scale;
  std::int64_t stride;

  KvLayerView view() const {
    if (type == KvCacheType::F16) return {type, k16.data(), v16.data(), nullptr, nullptr, stride};
    return {type, k8.data(), v8.data(), k_scale.data(), v_scale.data(), stride};
  }
};

CachedLayer random_cache(KvCacheType type, std::int64_t positions, std::int64_t n_kv, std::int64_t head_dim,
                         std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  CachedLayer c{type, {}, {}, {}, {}, {}, {}, n_kv * head_dim + 3};
  const auto values = static_cast<std::size_t>(positions * c.stride);
  c.k16.assign(values, 0), c.v16.assign(values, 0), c.k8.assign(values, 0), c.v8.assign(values, 0);
  c.k_scale.assign(static_cast<std::size_t>(positions * n_kv), 0.0f), c.v_scale = c.k_scale;
  std::vector<float> row(static_cast<std::size_t>(head_dim));
  for (std::int64_t p = 0; p < positions; ++p)
    for (std::int64_t h = 0; h < n_kv; ++h)
      for (int which = 0; which < 2; ++which) {
        const float magnitude = 0.25f + static_cast<float>((p * 7 + h * 3 + which) % 5);
        for (float& x : row) x = magnitude * dist(rng);
        const auto at = static_cast<std::size_t>(p * c.stride + h * head_dim);
        auto& halves = which ? c.v16 : c.k16;
        for (std::int64_t d = 0; d < head_dim; ++d) halves[at + static_cast<std::size_t>(d)] = f32_to_fp16(row[static_cast<std::size_t>(d)]);
        quantize_absmax(row.data(), head_dim, (which ? c.v8 : c.k8).data() + at,
                        (which ? c.v_scale : c.k_scale)[static_cast<std::size_t>(p * n_kv + h)]);
      }
  return c;
}

// Heads / KV heads / head size: GQA ratios 1 to 16, head sizes that are not multiples of 8 or 16 lanes, and
// whole-register head sizes that the decode path splits into 1 to 8 registers per slice, odd and even numbers of
// query vectors per KV head (the default model's 4/2/32, 6/2/48, 2/1/256).
const std::tuple<int, int, int> kAttentionShapes[] = {{4, 4, 8},  {8, 4, 64}, {20, 5, 128}, {6, 3, 13}, {8, 2, 37},
                                                      {16, 1, 100}, {3, 3, 24}, {4, 2, 32}, {6, 2, 48}, {2, 1, 256}};

// Attention of `backend` over `cache` for `rows` query rows: a causal prefix for the first half of the rows, all
// `positions` for the rest (a bidirectional block; block masks are limits too), and with 40 rows (more than one
// row block of the SIMD kernel) row 1 sees no position at all.
std::vector<float> run_attention(const Backend& backend, const CachedLayer& cache, const std::vector<float>& q,
                                 std::int64_t rows, std::int64_t positions, std::tuple<int, int, int> shape) {
  const auto [n_heads, n_kv, head_dim] = shape;
  std::vector<std::int32_t> limit(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r)
    limit[static_cast<std::size_t>(r)] =
        static_cast<std::int32_t>(r < rows / 2 ? std::max<std::int64_t>(0, positions - rows + 1 + r) : positions);
  if (rows >= 40) limit[1] = 0;
  std::vector<float> out(static_cast<std::size_t>(rows * n_heads * head_dim), -1.0f);
  backend.attention(q.data(), rows, cache.view(), limit.data(), n_heads, n_kv, head_dim, out.data());
  return out;
}

TEST_P(KernelConformance, AttentionMatchesReference) {
  for (KvCacheType type : {KvCacheType::F16, KvCacheType::Int8}) {
    for (auto shape : kAttentionShapes) {
      const auto [n_heads, n_kv, head_dim] = shape;
      for (std::int64_t positions : {37, 300, 700}) {
        const CachedLayer cache = random_cache(type, positions, n_kv, head_dim, rng_);
        // One row: the SIMD kernel splits long contexts across threads and merges the partial softmaxes.
        for (std::int64_t rows : {1, 9, 40}) {
          auto q = random_floats(static_cast<std::size_t>(rows * n_heads * head_dim), 1.0f);
          const auto got = run_attention(*backend_, cache, q, rows, positions, shape);
          const auto want = run_attention(*reference_, cache, q, rows, positions, shape);
          // Same row conversions (exact for F16, one multiply for int8); only the summation order differs.
          for (std::size_t i = 0; i < got.size(); ++i)
            ASSERT_NEAR(got[i], want[i], 2e-5f * (1.0f + std::fabs(want[i])))
                << kv_cache_type_name(type) << " heads " << n_heads << "/" << n_kv << " head_dim " << head_dim
                << " positions " << positions << " rows " << rows << " i " << i;
        }
      }
    }
  }
}

TEST_P(KernelConformance, Int8AttentionTracksF16) {
  // The int8 cache holds the same rows as the F16 one up to absmax/254 per value, so the outputs (up to ~15 here)
  // stay close: at most 0.15 off on these shapes. Reading another KV head's scale (rows differ up to 17x in
  // magnitude) puts them 6 to 15 off.
  for (auto shape : kAttentionShapes) {
    const auto [n_heads, n_kv, head_dim] = shape;
    const std::int64_t positions = 300, rows = 5;
    std::mt19937 same_rows(static_cast<std::uint32_t>(n_heads * 1000 + head_dim));
    const CachedLayer f16 = random_cache(KvCacheType::F16, positions, n_kv, head_dim, same_rows);
    const CachedLayer int8 = [&] {
      CachedLayer c = f16;   // the int8 fields were filled from the same rows
      c.type = KvCacheType::Int8;
      return c;
    }();
    auto q = random_floats(static_cast<std::size_t>(rows * n_heads * head_dim), 1.0f);
    const auto want = run_attention(*reference_, f16, q, rows, positions, shape);
    for (const Backend* be : {reference_.get(), backend_.get()}) {
      const auto got = run_attention(*be, int8, q, rows, positions, shape);
      double max_err = 0.0;
      for (std::size_t i = 0; i < got.size(); ++i) max_err = std::max(max_err, double{std::fabs(got[i] - want[i])});
      EXPECT_LT(max_err, 0.25) << be->name() << " heads " << n_heads << "/" << n_kv << " head_dim " << head_dim;
    }
  }
}

TEST_P(KernelConformance, AttentionRejectsBadKvViews) {
  const CachedLayer cache = random_cache(KvCacheType::Int8, 4, 2, 16, rng_);
  std::vector<float> q(4 * 16, 0.5f), out(q.size());
  std::vector<std::int32_t> limit{4};
  auto message = [&](KvLayerView view, std::int64_t n_heads, std::int64_t n_kv) {
    return test::error_message<Error>(
        [&] { backend_->attention(q.data(), 1, view, limit.data(), n_heads, n_kv, 16, out.data()); });
  };
  KvLayerView no_scales = cache.view();
  no_scales.v_scale = nullptr;
  EXPECT_NE(message(no_scales, 4, 2).find("without scales"), std::string::npos);
  KvLayerView narrow = cache.view();
  narrow.row_stride = 31;
  EXPECT_NE(message(narrow, 4, 2).find("row stride of 31"), std::string::npos);
  EXPECT_NE(message(cache.view(), 3, 2).find("cannot share"), std::string::npos);
  EXPECT_EQ(message(cache.view(), 4, 2), "(no error)");
}

TEST_P(KernelConformance, RmsNormMatchesReference) {
  for (std::int64_t cols : kCols) {
    const std::int64_t rows = 3;
    auto x = random_floats(static_cast<std::size_t>(rows * cols), 3.0f);
    auto weight = random_floats(static_cast<std::size_t>(cols), 1.0f);
    for (const float* wp : {static_cast<const float*>(weight.data()), static_cast<const float*>(nullptr)}) {
      std::vector<float> got(x.size()), want(x.size());
      backend_->rms_norm(x.data(), wp, rows, cols, 1e-5f, got.data());
      reference_->rms_norm(x.data(), wp, rows, cols, 1e-5f, want.data());
      for (std::size_t i = 0; i < got.size(); ++i)
        ASSERT_NEAR(got[i], want[i], 1e-5f * (1.0f + std::fabs(want[i]))) << "cols " << cols << " i " << i;
    }
  }
}

// Lengths around both register widths (8, 16) with tails, real FFN widths, and one long enough to be split across
// threads (prefill).
const std::int64_t kElementwiseSizes[] = {1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 100, 6912, 6913, 8 * 6912 + 5};

// Values where activations are delicate: signed zeros, ties of the ReLU, huge magnitudes, inf and NaN.
std::vector<float> special_gates() {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  return {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-45f, 20.0f, -20.0f, 87.0f, -87.0f, 88.7f, -88.7f, 88.73f, -88.73f,
          89.5f, -89.5f, 104.0f, -104.0f, 1e30f, -1e30f, inf, -inf, nan};
}

TEST_P(KernelConformance, ReluSquaredGateIsBitExact) {
  for (std::int64_t n : kElementwiseSizes) {
    auto gate = random_floats(static_cast<std::size_t>(n), 3.0f);
    const auto up = random_floats(static_cast<std::size_t>(n), 2.0f);
    const auto special = special_gates();
    for (std::size_t i = 0; i < special.size() && i < gate.size(); ++i) gate[gate.size() - 1 - i] = special[i];
    std::vector<float> got = gate, want = gate;
    backend_->gated_activation(got.data(), up.data(), n, true);
    reference_->gated_activation(want.data(), up.data(), n, true);
    ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << "n " << n;
  }
}

// SiLU goes through a vectorized exp: every result within the bound elementwise_kernel.hpp states.
TEST_P(KernelConformance, SiluGateIsWithinItsStatedBound) {
  auto check = [&](const std::vector<float>& gate, const std::vector<float>& up, const std::string& what) {
    std::vector<float> got = gate, want = gate;
    backend_->gated_activation(got.data(), up.data(), static_cast<std::int64_t>(gate.size()), false);
    reference_->gated_activation(want.data(), up.data(), static_cast<std::int64_t>(gate.size()), false);
    double worst = 0.0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      if (std::isnan(want[i]) || std::isinf(want[i])) {
        ASSERT_TRUE(std::isnan(want[i]) ? std::isnan(got[i]) : got[i] == want[i]) << what << " gate " << gate[i];
        continue;
      }
      const float err = std::fabs(got[i] - want[i]);
      ASSERT_LE(err, kSiluRelativeError * std::fabs(want[i]) + kSiluAbsoluteError)
          << what << " i " << i << " gate " << gate[i] << " up " << up[i] << ": " << got[i] << " vs " << want[i];
      if (std::fabs(want[i]) > 1e-30f) worst = std::max(worst, static_cast<double>(err / std::fabs(want[i])));
    }
    std::cout << "    " << what << ": largest relative error " << worst << "\n";
  };
  for (std::int64_t n : kElementwiseSizes) {
    auto gate = random_floats(static_cast<std::size_t>(n), 4.0f);
    const auto up = random_floats(static_cast<std::size_t>(n), 2.0f);
    const auto special = special_gates();
    for (std::size_t i = 0; i < special.size() && i < gate.size(); ++i) gate[gate.size() - 1 - i] = special[i];
    check(gate, up, "n " + std::to_string(n));
  }
  // Every 2^-10 step over the range where SiLU's exp neither vanishes nor overflows, and beyond.
  std::vector<float> sweep, ones;
  for (float g = -100.0f; g <= 100.0f; g += 1.0f / 1024) sweep.push_back(g);
  ones.assign(sweep.size(), 1.0f);
  check(sweep, ones, "sweep");
}

TEST_P(KernelConformance, RopeIsBitExact) {
  // (heads, head size, rotated dims): tails after 8 and 16 lanes, partial rotation, the 2B model's 20 x 128.
  const std::tuple<std::int64_t, std::int64_t, std::int64_t> shapes[] = {
      {1, 2, 2}, {3, 6, 6}, {2, 10, 6}, {4, 18, 18}, {2, 34, 16}, {5, 22, 14}, {2, 40, 34}, {3, 64, 64},
      {20, 128, 128}, {2, 96, 64}};
  for (auto [n_heads, head_dim, rope_dims] : shapes) {
    for (bool neox : {true, false}) {
      for (std::int64_t rows : {1, 3, 7}) {
        auto x = random_floats(static_cast<std::size_t>(rows * n_heads * head_dim), 2.0f);
        std::vector<std::int32_t> positions = {0, 1, 17, 511, 4095, 100000, 131071};
        positions.resize(static_cast<std::size_t>(rows));
        std::vector<float> got = x, want = x;
        backend_->rope(got.data(), rows, n_heads, head_dim, rope_dims, positions.data(), 500000.0f, neox);
        reference_->rope(want.data(), rows, n_heads, head_dim, rope_dims, positions.data(), 500000.0f, neox);
        ASSERT_EQ(got, want) << "heads " << n_heads << " head_dim " << head_dim << " rope_dims " << rope_dims
                             << (neox ? " neox" : " adjacent") << " rows " << rows;
      }
    }
  }
}

TEST_P(KernelConformance, RejectsMatricesPackedByAnotherBackend) {
  std::vector<std::int8_t> codes(8, 1);
  std::vector<float> scales(1, 1.0f);
  auto foreign = reference_->pack_ternary(TernaryMatrixView{1, 8, codes.data(), scales.data()});
  QuantizedActivations q;
  std::vector<float> x(8, 1.0f), y(1);
  reference_->quantize_activations(x.data(), 1, 8, 8, q);
  if (backend_->name() == "reference") GTEST_SKIP() << "the reference backend packs for itself";
  EXPECT_THROW(backend_->ternary_matmul(*foreign, q, y.data(), 1), Error);
}

// Every backend plugin the host discovers in the build's plugin directory, so a new backend is checked without
// editing this file (one its CPU cannot run skips, naming the missing features), plus the AVX2 backend as on a CPU
// without AVX-VNNI.
std::vector<std::string> discovered_backends() {
  const PluginHost host({BITRUN_TEST_PLUGIN_DIR}, detect_cpu());
  std::vector<std::string> names;
  for (const PluginRecord& r : host.plugins())
    if (r.kind == PluginKind::Backend && r.usable()) names.push_back(r.name);
  if (std::find(names.begin(), names.end(), "avx2") != names.end()) names.push_back("avx2-without-avx_vnni");
  return names;
}

INSTANTIATE_TEST_SUITE_P(Backends, KernelConformance, ::testing::ValuesIn(discovered_backends()),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
}  // namespace bitrun
