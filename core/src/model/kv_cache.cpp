#include "bitrun/model/kv_cache.hpp"

#include <algorithm>

#include "bitrun/config/config.hpp"
#include "bitrun/base/error.hpp"
#include "bitrun/gguf/ggml_types.hpp"

namespace bitrun {

const char* kv_cache_type_name(KvCacheType type) { return type == KvCacheType::F16 ? "f16" : "int8"; }

KvCacheType parse_kv_cache_type(std::string_view name) {
  if (name == "f16") return KvCacheType::F16;
  if (name == "int8") return KvCacheType::Int8;
  throw ConfigError("kv_cache.type: '" + std::string(name) + "' is not one of: f16, int8");
}

KvCacheType kv_cache_type_from_config(const Config& config) {
  return parse_kv_cache_type(config.get_string("kv_cache.type"));
}

void validate_kv_view(const KvLayerView& kv, std::int64_t n_heads, std::int64_t n_kv_heads, std::int64_t head_dim) {
  if (n_kv_heads < 1 || head_dim < 1 || n_heads < n_kv_heads || n_heads % n_kv_heads != 0)
    throw Error("attention: " + std::to_string(n_heads) + " query heads cannot share " + std::to_string(n_kv_heads) +
                " KV heads of size " + std::to_string(head_dim));
  if (!kv.k || !kv.v || kv.row_stride < n_kv_heads * head_dim)
    throw Error("attention: the KV view has no data or a row stride of " + std::to_string(kv.row_stride) +
                " below " + std::to_string(n_kv_heads * head_dim) + " values");
  if (kv.type == KvCacheType::Int8 && (!kv.k_scale || !kv.v_scale))
    throw Error("attention: an int8 KV view without scales");
}

KvCache::KvCache(const Model& model, std::int64_t capacity, KvCacheType type)
    : KvCache(model.hparams(), capacity, type) {}

KvCache::KvCache(const ModelHparams& hp, std::int64_t capacity, KvCacheType type)
    : type_(type), capacity_(capacity), n_head_kv_(hp.n_head_kv), head_dim_(hp.head_dim),
      row_size_(hp.n_head_kv * hp.head_dim) {
  if (capacity <= 0) throw Error("KV cache capacity must be positive");
  k_.resize(static_cast<std::size_t>(hp.n_layer));
  v_.resize(static_cast<std::size_t>(hp.n_layer));
}

std::int64_t KvCache::bytes_per_position() const {
  std::int64_t row_bytes = row_size_ * kv_value_bytes(type_);
  if (type_ == KvCacheType::Int8) row_bytes += n_head_kv_ * static_cast<std::int64_t>(sizeof(float));
  return 2 * static_cast<std::int64_t>(k_.size()) * row_bytes;   // K and V of every layer
}

void KvCache::resize_rows(Rows& rows, std::int64_t positions) const {
  if (type_ == KvCacheType::F16) {
    rows.f16.resize(static_cast<std::size_t>(positions * row_size_));
  } else {
    rows.int8.resize(static_cast<std::size_t>(positions * row_size_));
    rows.scale.resize(static_cast<std::size_t>(positions * n_head_kv_));
  }
}

void KvCache::reserve(std::int64_t n) {
  if (n <= allocated_) return;
  if (n > capacity_) throw Error("KV cache overflow: " + std::to_string(n) + " > " + std::to_string(capacity_));
  allocated_ = std::min(capacity_, std::max({n, 2 * allocated_, std::int64_t{256}}));   // geometric growth
  for (auto* layers : {&k_, &v_})
    for (Rows& rows : *layers) resize_rows(rows, allocated_);
}

void KvCache::truncate(std::int64_t n) { size_ = std::clamp<std::int64_t>(n, 0, size_); }

void KvCache::extend_to(std::int64_t n) {
  if (n > capacity_) throw Error("KV cache overflow: " + std::to_string(n) + " > " + std::to_string(capacity_));
  size_ = std::max(size_, n);
}

void KvCache::copy_rows(Rows& dst, const Rows& src, std::int64_t positions) const {
  const auto values = static_cast<std::size_t>(positions * row_size_);
  if (type_ == KvCacheType::F16) {
    std::copy_n(src.f16.data(), values, dst.f16.data());
    return;
  }
  std::copy_n(src.int8.data(), values, dst.int8.data());
  std::copy_n(src.scale.data(), static_cast<std::size_t>(positions * n_head_kv_), dst.scale.data());
}

void KvCache::copy_prefix_from(const KvCache& other, std::int64_t n) {
  if (other.type_ != type_)
    throw Error(std::string("KV cache: cannot copy positions from an ") + kv_cache_type_name(other.type_) +
                " cache into an " + kv_cache_type_name(type_) + " one");
  if (other.row_size_ != row_size_ || other.n_head_kv_ != n_head_kv_ || other.k_.size() != k_.size() ||
      n < 0 || n > other.size_ || n > capacity_)
    throw Error("KV cache: cannot copy " + std::to_string(n) + " positions from an incompatible or shorter cache");
  reserve(n);
  for (std::size_t l = 0; l < k_.size(); ++l) {
    copy_rows(k_[l], other.k_[l], n);
    copy_rows(v_[l], other.v_[l], n);
  }
  size_ = n;
}

void KvCache::store_row(Rows& rows, std::int64_t pos, const float* x) {
  if (type_ == KvCacheType::F16) {
    f32_to_fp16_array(x, row_size_, rows.f16.data() + pos * row_size_);
    return;
  }
  // One absmax scale per KV head: heads differ in range, and attention reads a head's row at a time.
  for (std::int64_t h = 0; h < n_head_kv_; ++h)
    quantize_absmax(x + h * head_dim_, head_dim_, rows.int8.data() + pos * row_size_ + h * head_dim_,
                    rows.scale[static_cast<std::size_t>(pos * n_head_kv_ + h)]);
}

void KvCache::store(std::int64_t layer, std::int64_t pos, const float* k, const float* v) {
  if (layer < 0 || layer >= static_cast<std::int64_t>(k_.size()) || pos < 0 || pos >= allocated_)
    throw Error("KV cache: layer " + std::to_string(layer) + " position " + std::to_string(pos) +
                " is not reserved");
  store_row(k_[static_cast<std::size_t>(layer)], pos, k);
  store_row(v_[static_cast<std::size_t>(layer)], pos, v);
}

KvLayerView KvCache::layer(std::int64_t layer) const {
  if (layer < 0 || layer >= static_cast<std::int64_t>(k_.size()))
    throw Error("KV cache: no layer " + std::to_string(layer));
  const Rows& k = k_[static_cast<std::size_t>(layer)];
  const Rows& v = v_[static_cast<std::size_t>(layer)];
  KvLayerView view;
  view.type = type_;
  view.row_stride = row_size_;
  if (type_ == KvCacheType::F16) {
    view.k = k.f16.data();
    view.v = v.f16.data();
  } else {
    view.k = k.int8.data();
    view.v = v.int8.data();
    view.k_scale = k.scale.data();
    view.v_scale = v.scale.data();
  }
  return view;
}

}  // namespace bitrun
