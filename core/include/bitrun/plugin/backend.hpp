// Backend: the kernels the core's transformer graph calls. The graph is written once (in the core); a backend
// only decides how each kernel runs. The base class holds the scalar reference implementation of every kernel,
// which is the test oracle and the fallback on CPUs without AVX2; a plugin overrides the kernels it accelerates
// and must produce the same results (tests/test_kernel_conformance.cpp holds every backend to that).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "bitrun/base/aligned.hpp"
#include "bitrun/base/cpu_features.hpp"
#include "bitrun/model/kv_layer_view.hpp"

namespace bitrun {

// A ternary (or, for pack_int8, int8) weight matrix as the model loader hands it over, independent of any backend
// layout. rows = output features (M), cols = input features (K); weight[m][k] = code(m, k) * row_scale[m].
// The codes come from `codes` (row-major) or, for matrices too large to expand at once, from `read_row`, which
// writes one row's cols codes into a buffer (it may be called from several threads at once).
struct TernaryMatrixView {
  using RowReader = std::function<void(std::int64_t row, std::int8_t* out)>;
  TernaryMatrixView() = default;
  TernaryMatrixView(std::int64_t rows_, std::int64_t cols_, const std::int8_t* codes_, const float* row_scale_,
                    RowReader read_row_ = {})
      : rows(rows_), cols(cols_), codes(codes_), row_scale(row_scale_), read_row(std::move(read_row_)) {}

  std::int64_t rows = 0;
  std::int64_t cols = 0;
  const std::int8_t* codes = nullptr;    // values in {-1, 0, +1} (pack_int8: [-127, 127]); or null, see read_row
  const float* row_scale = nullptr;      // one per row (a per-tensor scale is repeated)
  RowReader read_row;
  // Optional, besides codes / read_row: the same rows as stored in bitnet.cpp's I2_S layout (cols / 4 bytes per
  // row, cols a multiple of 128), for backends whose layout is a reordering of it (see ternary_pack.hpp).
  const std::uint8_t* i2s = nullptr;

  // Row m's codes: a pointer into `codes`, or `buffer` (cols bytes) filled by read_row.
  const std::int8_t* row(std::int64_t m, std::int8_t* buffer) const {
    if (codes) return codes + m * cols;
    read_row(m, buffer);
    return buffer;
  }
  bool valid() const { return rows > 0 && cols > 0 && (codes || read_row) && row_scale; }
};

// A matrix stored in ggml's Q6_K blocks, row-major (cols a multiple of 256; 210 bytes per 256 weights: low 4 bits,
// high 2 bits, an int8 scale per 16 weights, an fp16 scale d per 256): weight[m][k] = d * scale16 * (q6 - 32).
// The output projection of ternary models whose file stores it so, kept at 6.56 bits a weight instead of 8.
struct Q6kMatrixView {
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  const std::uint8_t* blocks = nullptr;   // rows * cols / 256 blocks
  bool valid() const { return rows > 0 && cols > 0 && cols % 256 == 0 && blocks; }
};

// A matrix repacked into the layout its backend computes fastest. Only the backend that packed it
// may use it.
class PackedMatrix {
 public:
  virtual ~PackedMatrix() = default;
  std::int64_t rows() const { return rows_; }
  std::int64_t cols() const { return cols_; }
  virtual std::size_t bytes() const = 0;   // memory it occupies, for load reports

 protected:
  PackedMatrix(std::int64_t rows, std::int64_t cols) : rows_(rows), cols_(cols) {}

 private:
  std::int64_t rows_, cols_;
};

// Activations quantized to int8 with absmax scales, as BitNet b1.58 prescribes:
// q = clamp(round_half_even(x * 127 / max|x|), -127, 127), max taken per scale group. A group is the whole row
// (block = 0: per token, what bitnet.cpp does and BitNet was trained with) or `block` consecutive elements
// (block = 256: what llama.cpp's TQ1_0/TQ2_0 kernels do). Rows are zero-padded to `stride`, a multiple of
// kActivationAlign, so kernels can read whole SIMD blocks.
struct QuantizedActivations {
  static constexpr std::int64_t kActivationAlign = 256;
  std::int64_t rows = 0, cols = 0, stride = 0;
  std::int64_t block = 0;                 // elements per scale group; 0 = the whole row
  AlignedVector<std::int8_t> q;           // rows * stride
  std::vector<float> scale;               // rows * groups(): x ~= q * scale (scale = max|x| / 127)
  std::vector<std::int32_t> sum;          // rows * groups(): sum of q, for kernels that store codes with an offset

  // `block` must be 0 or a multiple of kActivationAlign (so every backend's packed blocks nest in a group).
  void resize(std::int64_t n_rows, std::int64_t n_cols, std::int64_t block = 0);
  std::int64_t groups() const { return block ? (cols + block - 1) / block : 1; }
  const std::int8_t* row(std::int64_t r) const { return q.data() + r * stride; }
};

// Throws Error unless x can multiply w in q6_k_matmul: the same width, and scale groups of whole 256-weight blocks.
void check_q6_k_activations(const PackedMatrix& w, const QuantizedActivations& x);

// The scalar absmax quantization behind QuantizedActivations (and the int8 KV cache): n floats -> q[0..n) and
// scale = max(max|x|, 1e-5) / 127; returns the sum of q. Backends' quantize_group must match it bit for bit.
std::int32_t quantize_absmax(const float* x, std::int64_t n, std::int8_t* q, float& scale);

struct BackendOptions {
  int threads = 1;        // OpenMP threads a kernel may use
  CpuInfo cpu;            // features the host decided are usable (after any `cpu.disable`)
};

// Bound on a backend's SiLU gating against the reference (see Backend::gated_activation): about 8 ulps, and an
// absolute term for results the reference flushes to -0 because expf(-g) overflowed one rounding step earlier.
inline constexpr float kSiluRelativeError = 1e-6f;
inline constexpr float kSiluAbsoluteError = 1e-30f;

class Backend {
 public:
  explicit Backend(std::string name, BackendOptions options);
  virtual ~Backend() = default;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  const std::string& name() const { return name_; }
  const BackendOptions& options() const { return options_; }
  int threads() const { return options_.threads; }
  // Kernels use this many OpenMP threads from the next call on (at least 1); matrices stay valid.
  void set_threads(int threads) { options_.threads = threads < 1 ? 1 : threads; }

  // x: rows x cols floats with row stride x_stride -> out (resized as needed), one scale per `block` elements
  // (0 = per row; see QuantizedActivations). Calls quantize_group for each row and group.
  void quantize_activations(const float* x, std::int64_t rows, std::int64_t cols, std::int64_t x_stride,
                            QuantizedActivations& out, std::int64_t block = 0) const;

  // n floats with one absmax scale -> q[0..n), their scale and the sum of q.
  virtual void quantize_group(const float* x, std::int64_t n, std::int8_t* q, float& scale, std::int32_t& sum) const;

  virtual std::unique_ptr<PackedMatrix> pack_ternary(const TernaryMatrixView& w) const;

  // y[t*y_stride + m] = row_scale[m] * sum_g scale[t][g] * sum_{k in g} code[m][k] * q[t][k], for every token
  // row t of x, summed over the scale groups g in order (one group when x is quantized per row).
  virtual void ternary_matmul(const PackedMatrix& w, const QuantizedActivations& x, float* y,
                              std::int64_t y_stride) const;

  // A dense matrix quantized to int8 per row (the view's codes hold values in [-127, 127]): the output projection
  // of ternary models, so decoding does not stream 16-bit weights. int8_matmul has ternary_matmul's contract.
  virtual std::unique_ptr<PackedMatrix> pack_int8(const TernaryMatrixView& w) const;
  virtual void int8_matmul(const PackedMatrix& w, const QuantizedActivations& x, float* y, std::int64_t y_stride) const;

  // A Q6_K matrix read as stored (no wider copy). q6_k_matmul: for every token row t of x (its scale groups must be
  // whole multiples of 256 columns) and row m, y[t*y_stride + m] = the float sum, in block order, over 256-weight
  // blocks b of (float(dot_b) * d[m][b]) * scale[t][group of b], where the exact integer
  // dot_b = sum_j scale16[m][b][j] * sum_{k in sub-block j} (q6[m][k] - 32) * q[t][k].
  virtual std::unique_ptr<PackedMatrix> pack_q6_k(const Q6kMatrixView& w) const;
  virtual void q6_k_matmul(const PackedMatrix& w, const QuantizedActivations& x, float* y, std::int64_t y_stride) const;

  // y = x / sqrt(mean(x^2) + eps) * weight, per row of `cols` (weight may be null: no scaling).
  virtual void rms_norm(const float* x, const float* weight, std::int64_t rows, std::int64_t cols, float eps,
                        float* y) const;

  // Dense float matmul for non-ternary weights: y[t*y_stride + m] = sum_k w[m*cols + k] * x[t*cols + k].
  virtual void matmul_f32(const float* w, std::int64_t w_rows, std::int64_t cols, const float* x,
                          std::int64_t x_rows, float* y, std::int64_t y_stride) const;

  // Rotary position embedding in place on `rows` rows of n_heads * head_dim, row r at position positions[r].
  // Only the first rope_dims of each head rotate. Adjacent pairs (2i, 2i+1) for `llama`, NEOX pairs (i, i+d/2)
  // for the bitnet architectures.
  virtual void rope(float* x, std::int64_t rows, std::int64_t n_heads, std::int64_t head_dim, std::int64_t rope_dims,
                    const std::int32_t* positions, float freq_base, bool neox) const;

  // Attention for `rows` query rows against one layer of a KV cache (`kv`: F16 or int8 rows, see KvLayerView;
  // row p = position p). Query row r attends to positions [0, limit[r]) - causal and block-bidirectional masks
  // are both limits. Grouped-query: query head h uses KV head h / (n_heads / n_kv_heads).
  // out: rows x n_heads*head_dim. Error when `kv` does not describe n_kv_heads x head_dim rows (validate_kv_view).
  virtual void attention(const float* q, std::int64_t rows, const KvLayerView& kv, const std::int32_t* limit,
                         std::int64_t n_heads, std::int64_t n_kv_heads, std::int64_t head_dim, float* out) const;

  // Gated FFN activation in place: gate[i] = act(gate[i]) * up[i]; act = SiLU, or ReLU^2 when relu_squared.
  // ReLU^2 is exact everywhere; a backend's SiLU (a vectorized exp) may differ from this reference by
  // kSiluRelativeError * |reference| + kSiluAbsoluteError.
  virtual void gated_activation(float* gate, const float* up, std::int64_t n, bool relu_squared) const;

 private:
  std::string name_;
  BackendOptions options_;
};

// The built-in scalar backend ("reference"): always available, no plugin needed.
std::unique_ptr<Backend> make_reference_backend(BackendOptions options);

// Factory every backend plugin exports as `bitrun_create_backend`.
using CreateBackendFn = std::unique_ptr<Backend>(const BackendOptions&);

}  // namespace bitrun
