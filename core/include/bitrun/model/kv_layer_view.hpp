// How one layer's cached keys and values are stored, as Backend::attention reads them. The KV cache owns the
// memory (bitrun/kv_cache.hpp); this is the read-only description the kernels get, so a backend handles every
// storage type through one interface.
#pragma once

#include <cstdint>

namespace bitrun {

// Storage of cached K/V values. F16 is the default (what llama.cpp and bitnet.cpp keep); Int8 halves the memory
// and bandwidth again: symmetric int8 with one float scale per (position, KV head) row of head_dim values,
// value ~= code * scale with scale = absmax / 127.
enum class KvCacheType : std::uint8_t { F16, Int8 };

// Bytes one cached value takes (the per-row int8 scales come on top).
constexpr std::int64_t kv_value_bytes(KvCacheType type) { return type == KvCacheType::F16 ? 2 : 1; }

// "f16" / "int8", the config spelling (kv_cache.type).
const char* kv_cache_type_name(KvCacheType type);

// One layer of a cache: position p's K row starts `p * row_stride` values into `k` (n_kv_heads * head_dim values,
// head h at offset h * head_dim); the same for V. F16: the values are IEEE halves (std::uint16_t). Int8: they
// are std::int8_t codes, and the scale of (position p, KV head h) is k_scale[p * n_kv_heads + h] (v_scale for V).
struct KvLayerView {
  KvCacheType type = KvCacheType::F16;
  const void* k = nullptr;
  const void* v = nullptr;
  const float* k_scale = nullptr;   // Int8 only
  const float* v_scale = nullptr;   // Int8 only
  std::int64_t row_stride = 0;      // values between consecutive positions, at least n_kv_heads * head_dim
};

// Throws Error unless `kv` can hold n_kv_heads x head_dim rows (pointers set, scales for int8, stride wide
// enough) and n_heads is a positive multiple of n_kv_heads. Every backend's attention calls it first.
void validate_kv_view(const KvLayerView& kv, std::int64_t n_heads, std::int64_t n_kv_heads, std::int64_t head_dim);

// Reads cached rows of one KV head as floats, whatever the storage, so an attention loop is written once.
// A backend supplies its row conversions: HalfToFloat(const std::uint16_t* src, n, float* dst) and
// Int8ToFloat(const std::int8_t* src, float scale, n, float* dst), the latter computing dst[i] = src[i] * scale
// (one rounding, so every backend gets the same floats).
template <auto HalfToFloat, auto Int8ToFloat>
class KvRowReader {
 public:
  KvRowReader(const KvLayerView& kv, std::int64_t n_kv_heads, std::int64_t head_dim)
      : kv_(kv), n_kv_heads_(n_kv_heads), head_dim_(head_dim) {}
  // head_dim floats of KV head kvh at position p.
  void key(std::int64_t p, std::int64_t kvh, float* dst) const { read(kv_.k, kv_.k_scale, p, kvh, dst); }
  void value(std::int64_t p, std::int64_t kvh, float* dst) const { read(kv_.v, kv_.v_scale, p, kvh, dst); }
  // Ask for the K (V) row of (p, kvh) to be brought into cache ahead of its reading.
  void prefetch_key(std::int64_t p, std::int64_t kvh) const { prefetch(kv_.k, p, kvh); }
  void prefetch_value(std::int64_t p, std::int64_t kvh) const { prefetch(kv_.v, p, kvh); }

 private:
  void prefetch(const void* base, std::int64_t p, std::int64_t kvh) const {
    const std::int64_t size = kv_value_bytes(kv_.type);
    const char* row = static_cast<const char*>(base) + (p * kv_.row_stride + kvh * head_dim_) * size;
    for (std::int64_t b = 0; b < head_dim_ * size; b += 64) __builtin_prefetch(row + b);
  }
  void read(const void* base, const float* scales, std::int64_t p, std::int64_t kvh, float* dst) const {
    const std::int64_t offset = p * kv_.row_stride + kvh * head_dim_;
    if (kv_.type == KvCacheType::F16)
      HalfToFloat(static_cast<const std::uint16_t*>(base) + offset, head_dim_, dst);
    else
      Int8ToFloat(static_cast<const std::int8_t*>(base) + offset, scales[p * n_kv_heads_ + kvh], head_dim_, dst);
  }
  const KvLayerView& kv_;
  std::int64_t n_kv_heads_, head_dim_;
};

}  // namespace bitrun
