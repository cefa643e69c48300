// The scalar reference kernels: the Backend base class implementation. Written for clarity, not speed; every
// optimized backend is tested against these.
#include <algorithm>
#include <cmath>

#include "bitrun/plugin/backend.hpp"
#include "bitrun/base/error.hpp"
#include "bitrun/gguf/ggml_types.hpp"
#include "gguf/ggml_codecs.hpp"

namespace bitrun {
namespace {

// Reference layout: one int8 code per weight, row-major, plus per-row scales.
class ReferencePacked final : public PackedMatrix {
 public:
  explicit ReferencePacked(const TernaryMatrixView& w)
      : PackedMatrix(w.rows, w.cols), codes(static_cast<std::size_t>(w.rows * w.cols)),
        row_scale(w.row_scale, w.row_scale + w.rows) {
    for (std::int64_t m = 0; m < w.rows; ++m) {
      std::int8_t* dst = codes.data() + m * w.cols;
      const std::int8_t* src = w.row(m, dst);
      if (src != dst) std::copy(src, src + w.cols, dst);
    }
  }
  std::size_t bytes() const override { return codes.size() + row_scale.size() * sizeof(float); }

  std::vector<std::int8_t> codes;   // one int8 per weight: ternary codes or int8 values
  std::vector<float> row_scale;
};

// Reference Q6_K layout: each row's values as integers (q6 - 32), its sub-block scales and block scales d.
class ReferenceQ6k final : public PackedMatrix {
 public:
  explicit ReferenceQ6k(const Q6kMatrixView& w)
      : PackedMatrix(w.rows, w.cols), values(static_cast<std::size_t>(w.rows * w.cols)),
        scales(static_cast<std::size_t>(w.rows * w.cols / 16)), d(static_cast<std::size_t>(w.rows * w.cols / 256)) {
    std::uint8_t q[256];
    const auto block_bytes = static_cast<std::size_t>(type_traits(GgmlType::Q6_K).block_bytes);
    for (std::size_t b = 0; b < d.size(); ++b) {
      detail::unpack_q6_k_block(w.blocks + b * block_bytes, q, scales.data() + 16 * b, d[b]);
      const auto blocks_per_row = static_cast<std::size_t>(w.cols / 256);
      detail::check_q6_k_scale(d[b], static_cast<std::int64_t>(b / blocks_per_row),
                               static_cast<std::int64_t>(b % blocks_per_row));
      for (int k = 0; k < 256; ++k) values[256 * b + k] = static_cast<std::int8_t>(q[k] - 32);
    }
  }
  std::size_t bytes() const override { return values.size() + scales.size() + d.size() * sizeof(float); }

  std::vector<std::int8_t> values, scales;
  std::vector<float> d;
};

}  // namespace

void QuantizedActivations::resize(std::int64_t n_rows, std::int64_t n_cols, std::int64_t scale_block) {
  if (scale_block < 0 || scale_block % kActivationAlign != 0)
    throw Error("activation scale block " + std::to_string(scale_block) + " is not a multiple of " +
                std::to_string(kActivationAlign));
  rows = n_rows;
  cols = n_cols;
  block = scale_block;
  stride = (n_cols + kActivationAlign - 1) / kActivationAlign * kActivationAlign;
  q.assign(static_cast<std::size_t>(rows * stride), 0);
  scale.assign(static_cast<std::size_t>(rows * groups()), 0.0f);
  sum.assign(static_cast<std::size_t>(rows * groups()), 0);
}

Backend::Backend(std::string name, BackendOptions options) : name_(std::move(name)), options_(std::move(options)) {
  if (options_.threads < 1) options_.threads = 1;
}

void Backend::quantize_activations(const float* x, std::int64_t rows, std::int64_t cols, std::int64_t x_stride,
                                   QuantizedActivations& out, std::int64_t block) const {
  out.resize(rows, cols, block);
  const std::int64_t group_len = block ? block : cols, groups = out.groups();
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t g = 0; g < groups; ++g) {
      const std::int64_t begin = g * group_len;
      const auto i = static_cast<std::size_t>(r * groups + g);
      quantize_group(x + r * x_stride + begin, std::min(cols - begin, group_len), out.q.data() + r * out.stride + begin,
                     out.scale[i], out.sum[i]);
    }
}

std::int32_t quantize_absmax(const float* x, std::int64_t n, std::int8_t* q, float& scale) {
  float absmax = 0.0f;
  for (std::int64_t k = 0; k < n; ++k) absmax = std::max(absmax, std::fabs(x[k]));
  absmax = std::max(absmax, 1e-5f);   // an all-zero group quantizes to zeros instead of dividing by zero
  const float inv = 127.0f / absmax;
  std::int32_t sum = 0;
  for (std::int64_t k = 0; k < n; ++k) {
    const float v = std::clamp(std::nearbyint(x[k] * inv), -127.0f, 127.0f);   // half to even, like SIMD
    q[k] = static_cast<std::int8_t>(v);
    sum += q[k];
  }
  scale = absmax / 127.0f;
  return sum;
}

void Backend::quantize_group(const float* x, std::int64_t n, std::int8_t* q, float& scale, std::int32_t& sum) const {
  sum = quantize_absmax(x, n, q, scale);
}

std::unique_ptr<PackedMatrix> Backend::pack_ternary(const TernaryMatrixView& w) const {
  if (!w.valid()) throw Error("pack_ternary: empty or incomplete matrix");
  return std::make_unique<ReferencePacked>(w);
}

namespace {

// Both reference matmuls: exact integer dot per activation scale group, then the float operations every backend
// performs in this order.
void reference_matmul(const PackedMatrix& w, const QuantizedActivations& x, float* y, std::int64_t y_stride) {
  const auto* packed = dynamic_cast<const ReferencePacked*>(&w);
  if (!packed) throw Error("matmul: matrix was packed by another backend");
  if (x.cols != w.cols()) throw Error("matmul: activation width does not match the matrix");
  const std::int64_t groups = x.groups(), group_len = x.block ? x.block : w.cols();
  for (std::int64_t t = 0; t < x.rows; ++t) {
    const std::int8_t* q = x.row(t);
    for (std::int64_t m = 0; m < w.rows(); ++m) {
      const std::int8_t* c = packed->codes.data() + m * w.cols();
      float acc = 0.0f;
      for (std::int64_t g = 0; g < groups; ++g) {
        std::int32_t dot = 0;
        for (std::int64_t k = g * group_len; k < std::min(w.cols(), (g + 1) * group_len); ++k) dot += c[k] * q[k];
        const float part = static_cast<float>(dot) * x.scale[static_cast<std::size_t>(t * groups + g)];
        acc = g == 0 ? part : acc + part;
      }
      y[t * y_stride + m] = acc * packed->row_scale[m];
    }
  }
}

}  // namespace

void Backend::ternary_matmul(const PackedMatrix& w, const QuantizedActivations& x, float* y,
                             std::int64_t y_stride) const {
  reference_matmul(w, x, y, y_stride);
}

std::unique_ptr<PackedMatrix> Backend::pack_int8(const TernaryMatrixView& w) const {
  if (!w.valid()) throw Error("pack_int8: empty or incomplete matrix");
  return std::make_unique<ReferencePacked>(w);
}

void Backend::int8_matmul(const PackedMatrix& w, const QuantizedActivations& x, float* y, std::int64_t y_stride) const {
  reference_matmul(w, x, y, y_stride);
}

std::unique_ptr<PackedMatrix> Backend::pack_q6_k(const Q6kMatrixView& w) const {
  if (!w.valid()) throw Error("pack_q6_k: empty matrix or columns not a multiple of 256");
  return std::make_unique<ReferenceQ6k>(w);
}

void check_q6_k_activations(const PackedMatrix& w, const QuantizedActivations& x) {
  if (x.cols != w.cols()) throw Error("q6_k_matmul: activation width does not match the matrix");
  if (x.block % 256 != 0) throw Error("q6_k_matmul: activation scale groups must be whole 256-weight blocks");
}

void Backend::q6_k_matmul(const PackedMatrix& w, const QuantizedActivations& x, float* y,
                          std::int64_t y_stride) const {
  const auto* p = dynamic_cast<const ReferenceQ6k*>(&w);
  if (!p) throw Error("q6_k_matmul: matrix was not packed by this backend's pack_q6_k");
  check_q6_k_activations(w, x);
  const std::int64_t blocks = w.cols() / 256, groups = x.groups();
  const std::int64_t per_group = x.block ? x.block / 256 : blocks;
  for (std::int64_t t = 0; t < x.rows; ++t) {
    const std::int8_t* q = x.row(t);
    for (std::int64_t m = 0; m < w.rows(); ++m) {
      float acc = 0.0f;
      for (std::int64_t b = 0; b < blocks; ++b) {
        const std::int64_t first = (m * blocks + b) * 256;
        std::int32_t dot = 0;
        for (std::int64_t j = 0; j < 16; ++j) {
          std::int32_t sub = 0;
          for (std::int64_t k = 16 * j; k < 16 * j + 16; ++k) sub += p->values[first + k] * q[256 * b + k];
          dot += p->scales[first / 16 + j] * sub;
        }
        const float part = static_cast<float>(dot) * p->d[first / 256];
        acc += part * x.scale[static_cast<std::size_t>(t * groups + b / per_group)];
      }
      y[t * y_stride + m] = acc;
    }
  }
}

void Backend::rms_norm(const float* x, const float* weight, std::int64_t rows, std::int64_t cols, float eps,
                       float* y) const {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    double sum_sq = 0.0;
    for (std::int64_t k = 0; k < cols; ++k) sum_sq += static_cast<double>(xr[k]) * xr[k];
    const float inv_rms = static_cast<float>(1.0 / std::sqrt(sum_sq / static_cast<double>(cols) + eps));
    float* yr = y + r * cols;
    for (std::int64_t k = 0; k < cols; ++k) yr[k] = xr[k] * inv_rms * (weight ? weight[k] : 1.0f);
  }
}

void Backend::matmul_f32(const float* w, std::int64_t w_rows, std::int64_t cols, const float* x, std::int64_t x_rows,
                         float* y, std::int64_t y_stride) const {
  for (std::int64_t t = 0; t < x_rows; ++t) {
    const float* xt = x + t * cols;
    for (std::int64_t m = 0; m < w_rows; ++m) {
      const float* wm = w + m * cols;
      double acc = 0.0;
      for (std::int64_t k = 0; k < cols; ++k) acc += static_cast<double>(wm[k]) * xt[k];
      y[t * y_stride + m] = static_cast<float>(acc);
    }
  }
}

void Backend::rope(float* x, std::int64_t rows, std::int64_t n_heads, std::int64_t head_dim, std::int64_t rope_dims,
                   const std::int32_t* positions, float freq_base, bool neox) const {
  const std::int64_t half = rope_dims / 2;
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t i = 0; i < half; ++i) {
      // theta_i = pos * base^(-2i/d), computed in double so long positions keep their precision.
      const double theta = positions[r] * std::pow(static_cast<double>(freq_base), -2.0 * i / rope_dims);
      const float c = static_cast<float>(std::cos(theta)), s = static_cast<float>(std::sin(theta));
      for (std::int64_t h = 0; h < n_heads; ++h) {
        float* head = x + (r * n_heads + h) * head_dim;
        const std::int64_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
        const float x0 = head[a], x1 = head[b];
        head[a] = x0 * c - x1 * s;
        head[b] = x0 * s + x1 * c;
      }
    }
  }
}

namespace {

void half_row_to_float(const std::uint16_t* src, std::int64_t n, float* dst) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = fp16_to_f32(src[i]);
}

void int8_row_to_float(const std::int8_t* src, float scale, std::int64_t n, float* dst) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]) * scale;
}

}  // namespace

void Backend::attention(const float* q, std::int64_t rows, const KvLayerView& kv, const std::int32_t* limit,
                        std::int64_t n_heads, std::int64_t n_kv_heads, std::int64_t head_dim, float* out) const {
  validate_kv_view(kv, n_heads, n_kv_heads, head_dim);
  const KvRowReader<half_row_to_float, int8_row_to_float> cached(kv, n_kv_heads, head_dim);
  const std::int64_t group = n_heads / n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  std::vector<float> scores, row(static_cast<std::size_t>(head_dim));
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t n_pos = limit[r];
    scores.resize(static_cast<std::size_t>(n_pos));
    for (std::int64_t h = 0; h < n_heads; ++h) {
      const float* qh = q + (r * n_heads + h) * head_dim;
      const std::int64_t kvh = h / group;
      float max_score = -INFINITY;
      for (std::int64_t p = 0; p < n_pos; ++p) {
        cached.key(p, kvh, row.data());
        float dot = 0.0f;
        for (std::int64_t d = 0; d < head_dim; ++d) dot += qh[d] * row[static_cast<std::size_t>(d)];
        scores[p] = dot * scale;
        max_score = std::max(max_score, scores[p]);
      }
      double denom = 0.0;
      for (std::int64_t p = 0; p < n_pos; ++p) denom += scores[p] = std::exp(scores[p] - max_score);
      float* oh = out + (r * n_heads + h) * head_dim;
      std::fill(oh, oh + head_dim, 0.0f);
      for (std::int64_t p = 0; p < n_pos; ++p) {
        const float wgt = static_cast<float>(scores[p] / denom);
        cached.value(p, kvh, row.data());
        for (std::int64_t d = 0; d < head_dim; ++d) oh[d] += wgt * row[static_cast<std::size_t>(d)];
      }
    }
  }
}

void Backend::gated_activation(float* gate, const float* up, std::int64_t n, bool relu_squared) const {
  for (std::int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float act = relu_squared ? (g > 0.0f ? g * g : 0.0f) : g / (1.0f + std::exp(-g));
    gate[i] = act * up[i];
  }
}

std::unique_ptr<Backend> make_reference_backend(BackendOptions options) {
  return std::make_unique<Backend>(std::string("reference"), std::move(options));
}

}  // namespace bitrun
