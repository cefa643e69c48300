// The scalar reference kernels: the Backend base class implementation. Written for clarity, not speed; every
// optimized backend is tested against these.
#include <algorithm>
#include <cmath>

#include "bitrun/backend.hpp"
#include "bitrun/error.hpp"

namespace bitrun {
namespace {

// Reference layout: one int8 code per weight, row-major, plus per-row scales.
class ReferencePacked final : public PackedTernary {
 public:
  explicit ReferencePacked(const TernaryMatrixView& w)
      : PackedTernary(w.rows, w.cols),
        codes(w.codes, w.codes + w.rows * w.cols),
        row_scale(w.row_scale, w.row_scale + w.rows) {}
  std::size_t bytes() const override { return codes.size() + row_scale.size() * sizeof(float); }

  std::vector<std::int8_t> codes;
  std::vector<float> row_scale;
};

}  // namespace

void QuantizedActivations::resize(std::int64_t n_rows, std::int64_t n_cols) {
  rows = n_rows;
  cols = n_cols;
  stride = (n_cols + kActivationAlign - 1) / kActivationAlign * kActivationAlign;
  q.assign(static_cast<std::size_t>(rows * stride), 0);
  scale.assign(static_cast<std::size_t>(rows), 0.0f);
  sum.assign(static_cast<std::size_t>(rows), 0);
}

Backend::Backend(std::string name, BackendOptions options) : name_(std::move(name)), options_(std::move(options)) {
  if (options_.threads < 1) options_.threads = 1;
}

void Backend::quantize_activations(const float* x, std::int64_t rows, std::int64_t cols, std::int64_t x_stride,
                                   QuantizedActivations& out) const {
  out.resize(rows, cols);
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * x_stride;
    float absmax = 0.0f;
    for (std::int64_t k = 0; k < cols; ++k) absmax = std::max(absmax, std::fabs(xr[k]));
    absmax = std::max(absmax, 1e-5f);   // an all-zero row quantizes to zeros instead of dividing by zero
    const float inv = 127.0f / absmax;
    std::int8_t* qr = out.q.data() + r * out.stride;
    std::int32_t sum = 0;
    for (std::int64_t k = 0; k < cols; ++k) {
      float v = std::nearbyint(xr[k] * inv);   // round half to even, like the SIMD conversions
      v = std::clamp(v, -127.0f, 127.0f);
      qr[k] = static_cast<std::int8_t>(v);
      sum += qr[k];
    }
    out.scale[r] = absmax / 127.0f;
    out.sum[r] = sum;
  }
}

std::unique_ptr<PackedTernary> Backend::pack_ternary(const TernaryMatrixView& w) const {
  if (w.rows <= 0 || w.cols <= 0 || !w.codes || !w.row_scale)
    throw Error("pack_ternary: empty or incomplete matrix");
  return std::make_unique<ReferencePacked>(w);
}

void Backend::ternary_matmul(const PackedTernary& w, const QuantizedActivations& x, float* y,
                             std::int64_t y_stride) const {
  const auto* packed = dynamic_cast<const ReferencePacked*>(&w);
  if (!packed) throw Error("ternary_matmul: matrix was packed by another backend");
  if (x.cols != w.cols()) throw Error("ternary_matmul: activation width does not match the matrix");
  for (std::int64_t t = 0; t < x.rows; ++t) {
    const std::int8_t* q = x.row(t);
    for (std::int64_t m = 0; m < w.rows(); ++m) {
      const std::int8_t* c = packed->codes.data() + m * w.cols();
      std::int32_t dot = 0;
      for (std::int64_t k = 0; k < w.cols(); ++k) dot += c[k] * q[k];
      y[t * y_stride + m] = static_cast<float>(dot) * x.scale[t] * packed->row_scale[m];
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

std::unique_ptr<Backend> make_reference_backend(BackendOptions options) {
  return std::make_unique<Backend>(std::string("reference"), std::move(options));
}

}  // namespace bitrun
