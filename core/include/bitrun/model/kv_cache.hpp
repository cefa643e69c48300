// Per-sequence key/value cache: for every layer, one K row and one V row (n_head_kv * head_dim values) per
// position. The storage is F16 by default (half the memory and attention bandwidth of float, as llama.cpp and
// bitnet.cpp do) or int8 with one scale per (position, KV head) (about half of F16 again; config kv_cache.type).
// Positions are written by the forward pass; truncate() forgets positions from n on (block diffusion re-decodes
// a block by truncating to its start). Storage grows with use up to `capacity`, so a long context costs memory
// only when it is used.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "bitrun/model/kv_layer_view.hpp"
#include "bitrun/model/model.hpp"

namespace bitrun {

class Config;

// The KV cache type the configuration asks for (kv_cache.type): the one place that reads it. It belongs to what
// runs a model, not to the model: the CLI passes it to the engine it runs (SchedulerOptions::kv_cache, Engine),
// to perplexity and to bench, and every cache they create has it.
KvCacheType kv_cache_type_from_config(const Config& config);
// "f16" / "int8" -> the type; ConfigError naming kv_cache.type otherwise.
KvCacheType parse_kv_cache_type(std::string_view name);

class KvCache {
 public:
  // A cache of `type` for the model's shapes.
  KvCache(const Model& model, std::int64_t capacity, KvCacheType type = KvCacheType::F16);
  KvCache(const ModelHparams& hp, std::int64_t capacity, KvCacheType type);

  KvCacheType type() const { return type_; }
  std::int64_t capacity() const { return capacity_; }
  // Values per K (or V) row: n_head_kv * head_dim.
  std::int64_t row_size() const { return row_size_; }
  // Bytes one position takes over all layers, K and V, scales included.
  std::int64_t bytes_per_position() const;
  // Positions [0, size()) hold valid K/V.
  std::int64_t size() const { return size_; }
  void truncate(std::int64_t n);
  // Marks positions [0, n) valid after a forward wrote them.
  void extend_to(std::int64_t n);
  // Makes positions [0, n) addressable (n <= capacity) before a forward writes or reads them.
  void reserve(std::int64_t n);
  // Replaces this cache's content with positions [0, n) of `other` (same model and type), e.g. a shared prompt
  // prefix. Error for a cache of another shape or type, or fewer than n positions.
  void copy_prefix_from(const KvCache& other, std::int64_t n);

  // Stores the row_size() floats of K and of V for `layer` at `pos` (reserved) in this cache's format: F16
  // rounds each value to the nearest half; int8 quantizes each KV head's head_dim values with their absmax.
  void store(std::int64_t layer, std::int64_t pos, const float* k, const float* v);
  // The layer's storage as attention reads it, valid until the next reserve() or copy_prefix_from().
  KvLayerView layer(std::int64_t layer) const;

 private:
  // One layer of K or V: allocated rows of row_size codes (2 bytes each for F16, 1 for int8) and, for int8,
  // one scale per (row, KV head).
  struct Rows {
    std::vector<std::uint16_t> f16;
    std::vector<std::int8_t> int8;
    std::vector<float> scale;
  };
  void store_row(Rows& rows, std::int64_t pos, const float* x);
  void resize_rows(Rows& rows, std::int64_t positions) const;
  void copy_rows(Rows& dst, const Rows& src, std::int64_t positions) const;

  KvCacheType type_;
  std::int64_t capacity_, n_head_kv_, head_dim_, row_size_, size_ = 0, allocated_ = 0;
  std::vector<Rows> k_, v_;   // per layer
};

}  // namespace bitrun
