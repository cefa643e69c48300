#include "bitrun/kv_cache.hpp"

#include <algorithm>

#include "bitrun/error.hpp"

namespace bitrun {

KvCache::KvCache(const ModelHparams& hp, std::int64_t capacity)
    : capacity_(capacity), row_size_(hp.n_head_kv * hp.head_dim) {
  if (capacity <= 0) throw Error("KV cache capacity must be positive");
  k_.resize(static_cast<std::size_t>(hp.n_layer));
  v_.resize(static_cast<std::size_t>(hp.n_layer));
}

void KvCache::reserve(std::int64_t n) {
  if (n <= allocated_) return;
  if (n > capacity_) throw Error("KV cache overflow: " + std::to_string(n) + " > " + std::to_string(capacity_));
  allocated_ = std::min(capacity_, std::max({n, 2 * allocated_, std::int64_t{256}}));   // geometric growth
  for (auto* layers : {&k_, &v_})
    for (auto& l : *layers) l.resize(static_cast<std::size_t>(allocated_ * row_size_));
}

void KvCache::truncate(std::int64_t n) { size_ = std::clamp<std::int64_t>(n, 0, size_); }

void KvCache::extend_to(std::int64_t n) {
  if (n > capacity_) throw Error("KV cache overflow: " + std::to_string(n) + " > " + std::to_string(capacity_));
  size_ = std::max(size_, n);
}

void KvCache::copy_prefix_from(const KvCache& other, std::int64_t n) {
  if (other.row_size_ != row_size_ || other.k_.size() != k_.size() || n > other.size_ || n > capacity_)
    throw Error("KV cache: cannot copy " + std::to_string(n) + " positions from an incompatible or shorter cache");
  reserve(n);
  const auto count = static_cast<std::size_t>(n * row_size_);
  for (std::size_t l = 0; l < k_.size(); ++l) {
    std::copy_n(other.k_[l].data(), count, k_[l].data());
    std::copy_n(other.v_[l].data(), count, v_[l].data());
  }
  size_ = n;
}

}  // namespace bitrun
