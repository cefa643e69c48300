// KvCache on its own: what each storage type keeps of a float row, its memory per position, and that reserve,
// truncate and copy_prefix_from keep exactly the positions they promise, for F16 and int8 alike.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "bitrun/base/error.hpp"
#include "bitrun/gguf/ggml_types.hpp"
#include "bitrun/model/kv_cache.hpp"
#include "test_support.hpp"

namespace bitrun {
namespace {

ModelHparams shape(std::int64_t layers, std::int64_t kv_heads, std::int64_t head_dim) {
  ModelHparams hp;
  hp.n_layer = layers;
  hp.n_head = hp.n_head_kv = kv_heads;
  hp.head_dim = head_dim;
  return hp;
}

// Row `pos` of K (or V, `which` = 1) in layer `l`: each KV head at its own magnitude.
std::vector<float> row_values(std::int64_t l, std::int64_t pos, int which, std::int64_t kv_heads, std::int64_t head_dim) {
  std::mt19937 rng(static_cast<std::uint32_t>(l * 100000 + pos * 2 + which));
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> row(static_cast<std::size_t>(kv_heads * head_dim));
  for (std::int64_t h = 0; h < kv_heads; ++h)
    for (std::int64_t d = 0; d < head_dim; ++d)
      row[static_cast<std::size_t>(h * head_dim + d)] = (0.1f + 3.0f * static_cast<float>(h)) * dist(rng);
  return row;
}

void fill(KvCache& cache, std::int64_t layers, std::int64_t from, std::int64_t to, std::int64_t kv_heads,
          std::int64_t head_dim, std::int64_t seed = 0) {
  cache.reserve(to);
  for (std::int64_t l = 0; l < layers; ++l)
    for (std::int64_t p = from; p < to; ++p)
      cache.store(l, p, row_values(l, p + seed, 0, kv_heads, head_dim).data(),
                  row_values(l, p + seed, 1, kv_heads, head_dim).data());
  cache.extend_to(to);
}

// Row `pos` of K (which = 0) or V of layer `l` as the cache hands it to attention, decoded to floats.
std::vector<float> read_row(const KvCache& cache, std::int64_t l, std::int64_t pos, int which, std::int64_t kv_heads,
                            std::int64_t head_dim) {
  const KvLayerView view = cache.layer(l);
  std::vector<float> out(static_cast<std::size_t>(kv_heads * head_dim));
  for (std::int64_t i = 0; i < kv_heads * head_dim; ++i) {
    const std::int64_t at = pos * view.row_stride + i;
    if (view.type == KvCacheType::F16) {
      out[static_cast<std::size_t>(i)] = fp16_to_f32(static_cast<const std::uint16_t*>(which ? view.v : view.k)[at]);
    } else {
      // The pointer chosen first: GCC 12 at -O0 with -fsanitize=undefined (its divide-by-zero and alignment checks)
      // miscompiles `(which ? v_scale : k_scale)[... + i / head_dim]` into reading the next head's scale, which
      // is what failed this test in the Debug + ASan/UBSan build (issue #18, item 5).
      const float* scales = which ? view.v_scale : view.k_scale;
      const float scale = scales[pos * kv_heads + i / head_dim];
      out[static_cast<std::size_t>(i)] = static_cast<float>(static_cast<const std::int8_t*>(which ? view.v : view.k)[at]) * scale;
    }
  }
  return out;
}

TEST(KvCache, Int8KeepsEachHeadWithinHalfAStepOfItsScale) {
  const std::int64_t layers = 2, kv_heads = 3, head_dim = 37;
  KvCache cache(shape(layers, kv_heads, head_dim), 50, KvCacheType::Int8);
  EXPECT_EQ(cache.type(), KvCacheType::Int8);
  fill(cache, layers, 0, 50, kv_heads, head_dim);
  for (std::int64_t l = 0; l < layers; ++l)
    for (std::int64_t p : {0, 17, 49})
      for (int which : {0, 1}) {
        const auto want = row_values(l, p, which, kv_heads, head_dim);
        const auto got = read_row(cache, l, p, which, kv_heads, head_dim);
        for (std::int64_t h = 0; h < kv_heads; ++h) {
          float absmax = 0.0f;
          for (std::int64_t d = 0; d < head_dim; ++d) absmax = std::max(absmax, std::fabs(want[static_cast<std::size_t>(h * head_dim + d)]));
          // The head's own scale: a small head is not quantized with a large head's step.
          const float step = absmax / 127.0f;
          const float* scales = which ? cache.layer(l).v_scale : cache.layer(l).k_scale;
          EXPECT_EQ(scales[p * kv_heads + h], step);
          for (std::int64_t d = 0; d < head_dim; ++d) {
            const auto i = static_cast<std::size_t>(h * head_dim + d);
            ASSERT_LE(std::fabs(got[i] - want[i]), 0.5f * step * 1.0001f) << "layer " << l << " pos " << p << " head " << h;
          }
        }
      }
}

TEST(KvCache, F16StoresTheNearestHalf) {
  const std::int64_t kv_heads = 2, head_dim = 8;
  KvCache cache(shape(1, kv_heads, head_dim), 4, KvCacheType::F16);
  fill(cache, 1, 0, 4, kv_heads, head_dim);
  const auto want = row_values(0, 3, 1, kv_heads, head_dim);
  const auto got = read_row(cache, 0, 3, 1, kv_heads, head_dim);
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got[i], fp16_to_f32(f32_to_fp16(want[i])));
  EXPECT_EQ(cache.layer(0).k_scale, nullptr);
}

TEST(KvCache, Int8TakesAboutHalfTheMemoryOfF16) {
  // BitNet b1.58 2B-4T: 30 layers, 5 KV heads of 128.
  const ModelHparams hp = shape(30, 5, 128);
  const std::int64_t f16 = KvCache(hp, 1, KvCacheType::F16).bytes_per_position();
  const std::int64_t int8 = KvCache(hp, 1, KvCacheType::Int8).bytes_per_position();
  EXPECT_EQ(f16, 30 * 2 * 640 * 2);              // 76800: K and V, 2 bytes a value
  EXPECT_EQ(int8, 30 * 2 * (640 + 5 * 4));       // 39600: 1 byte a value plus a float scale per head
  EXPECT_LT(static_cast<double>(int8) / static_cast<double>(f16), 0.52);
}

TEST(KvCache, ReserveTruncateAndCopyPrefixKeepTheirPositions) {
  const std::int64_t layers = 2, kv_heads = 2, head_dim = 19;
  for (KvCacheType type : {KvCacheType::F16, KvCacheType::Int8}) {
    const ModelHparams hp = shape(layers, kv_heads, head_dim);
    KvCache a(hp, 600, type);
    fill(a, layers, 0, 10, kv_heads, head_dim);
    const auto row5 = read_row(a, 1, 5, 1, kv_heads, head_dim);
    // Growing past the first allocation (256 positions) keeps what was stored.
    fill(a, layers, 10, 300, kv_heads, head_dim);
    EXPECT_EQ(a.size(), 300);
    EXPECT_EQ(read_row(a, 1, 5, 1, kv_heads, head_dim), row5) << kv_cache_type_name(type);
    // Truncate forgets positions from n on; writing them again replaces them.
    a.truncate(120);
    EXPECT_EQ(a.size(), 120);
    fill(a, layers, 120, 130, kv_heads, head_dim, /*seed=*/1000);
    EXPECT_EQ(a.size(), 130);
    KvCache fresh(hp, 1, type);   // what a cache of this type keeps of position 125's new values
    fresh.reserve(1);
    fresh.store(0, 0, row_values(0, 125 + 1000, 0, kv_heads, head_dim).data(),
                row_values(0, 125 + 1000, 1, kv_heads, head_dim).data());
    EXPECT_EQ(read_row(a, 0, 125, 0, kv_heads, head_dim), read_row(fresh, 0, 0, 0, kv_heads, head_dim))
        << kv_cache_type_name(type);
    EXPECT_NE(read_row(a, 0, 125, 0, kv_heads, head_dim), read_row(a, 0, 124, 0, kv_heads, head_dim));

    // copy_prefix_from: exactly positions [0, n), codes and scales, into a cache that had other content.
    KvCache c(hp, 200, type);
    fill(c, layers, 0, 150, kv_heads, head_dim, /*seed=*/7);
    c.copy_prefix_from(a, 100);
    EXPECT_EQ(c.size(), 100);
    for (std::int64_t l = 0; l < layers; ++l)
      for (std::int64_t p : {0, 57, 99})
        for (int which : {0, 1})
          EXPECT_EQ(read_row(c, l, p, which, kv_heads, head_dim), read_row(a, l, p, which, kv_heads, head_dim))
              << kv_cache_type_name(type) << " layer " << l << " pos " << p;
    EXPECT_THROW(c.copy_prefix_from(a, 131), Error);   // a holds 130
  }
}

TEST(KvCache, CachesOfDifferentTypesOrShapesDoNotMix) {
  const ModelHparams hp = shape(2, 2, 16);
  KvCache f16(hp, 8, KvCacheType::F16), int8(hp, 8, KvCacheType::Int8), other(shape(2, 1, 16), 8, KvCacheType::Int8);
  fill(f16, 2, 0, 4, 2, 16);
  fill(int8, 2, 0, 4, 2, 16);
  const std::string msg = test::error_message<Error>([&] { int8.copy_prefix_from(f16, 2); });
  EXPECT_NE(msg.find("from an f16 cache into an int8 one"), std::string::npos) << msg;
  EXPECT_THROW(f16.copy_prefix_from(int8, 2), Error);
  EXPECT_THROW(other.copy_prefix_from(int8, 2), Error);
  EXPECT_THROW(int8.store(0, 8, nullptr, nullptr), Error);   // beyond what was reserved
  EXPECT_THROW(int8.store(2, 0, nullptr, nullptr), Error);   // no such layer
  EXPECT_THROW(KvCache(hp, 0, KvCacheType::Int8), Error);
}

}  // namespace
}  // namespace bitrun
