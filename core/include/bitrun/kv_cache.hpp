// Per-sequence key/value cache: for every layer, one K row and one V row (n_head_kv * head_dim values, stored as
// IEEE half: half the memory and attention bandwidth of float, as llama.cpp and bitnet.cpp do by default) per
// position. Positions are written by the forward pass; truncate() forgets positions from n on (block diffusion
// re-decodes a block by truncating to its start). Storage grows with use up to `capacity`, so a long context
// costs memory only when it is used.
#pragma once

#include <cstdint>
#include <vector>

#include "bitrun/model.hpp"

namespace bitrun {

class KvCache {
 public:
  KvCache(const ModelHparams& hp, std::int64_t capacity);

  std::int64_t capacity() const { return capacity_; }
  std::int64_t row_size() const { return row_size_; }
  // Positions [0, size()) hold valid K/V.
  std::int64_t size() const { return size_; }
  void truncate(std::int64_t n);
  // Marks positions [0, n) valid after a forward wrote them.
  void extend_to(std::int64_t n);
  // Makes positions [0, n) addressable (n <= capacity) before a forward writes or reads them.
  void reserve(std::int64_t n);
  // Replaces this cache's content with positions [0, n) of `other` (same model), e.g. a shared prompt prefix.
  void copy_prefix_from(const KvCache& other, std::int64_t n);

  std::uint16_t* k(std::int64_t layer, std::int64_t pos) { return k_[static_cast<std::size_t>(layer)].data() + pos * row_size_; }
  std::uint16_t* v(std::int64_t layer, std::int64_t pos) { return v_[static_cast<std::size_t>(layer)].data() + pos * row_size_; }
  const std::uint16_t* k(std::int64_t layer) const { return k_[static_cast<std::size_t>(layer)].data(); }
  const std::uint16_t* v(std::int64_t layer) const { return v_[static_cast<std::size_t>(layer)].data(); }

 private:
  std::int64_t capacity_, row_size_, size_ = 0, allocated_ = 0;
  std::vector<std::vector<std::uint16_t>> k_, v_;
};

}  // namespace bitrun
