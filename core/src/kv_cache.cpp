#include "bitrun/kv_cache.hpp"

#include <algorithm>

#include "bitrun/error.hpp"

namespace bitrun {

KvCache::KvCache(const ModelHparams& hp, std::int64_t capacity)
    : capacity_(capacity), row_size_(hp.n_head_kv * hp.head_dim) {
  if (capacity <= 0) throw Error("KV cache capacity must be positive");
  k_.assign(static_cast<std::size_t>(hp.n_layer), std::vector<float>(static_cast<std::size_t>(capacity * row_size_)));
  v_ = k_;
}

void KvCache::truncate(std::int64_t n) { size_ = std::clamp<std::int64_t>(n, 0, size_); }

void KvCache::extend_to(std::int64_t n) {
  if (n > capacity_) throw Error("KV cache overflow: " + std::to_string(n) + " > " + std::to_string(capacity_));
  size_ = std::max(size_, n);
}

}  // namespace bitrun
