// The element-wise kernels (gated FFN activation, rotary embedding) written once for the SIMD backends, like
// attention_kernel.hpp: each plugin includes this in its ISA translation unit and instantiates the templates with
// its own vector type `V`, a struct of static functions over one register of V::kLanes floats:
//   F (the register type), kLanes, load, store, set1, add, sub, mul, div, fmadd (a * b + c, one rounding),
//   max, min (both return the second operand when either is NaN, as x86 does), round (to nearest even),
//   floor, pow2 (2^n for integral n in [-126, 127]), swap_pairs (lanes 2i and 2i+1 exchanged), hsum (the sum of
//   the lanes, in the ISA's usual reduction order).
//
// Accuracy against the scalar reference (Backend::gated_activation, Backend::rope):
// - ReLU^2 gating and both rope pair layouts perform the reference's float operations in its order: bit-identical.
// - SiLU uses exp_lanes below instead of std::exp: within the bound backend.hpp states (measured: 2.4e-7 relative,
//   about 2 ulps, over every 2^-10 step of [-100, 100]).
#pragma once

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "bitrun/plugin/backend.hpp"
#include "backend_common/parallel_for.hpp"

namespace bitrun {

// e^x per lane, for x of either sign: x = n ln2 + r with |r| <= ln2 / 2, e^r by its Taylor series to r^7 (the
// next term is below 6e-9 relative), then times 2^n in two halves so that n can reach 128 (overflow to inf, as
// expf) and -149 (denormals) without leaving pow2's range. NaN input gives a finite value: callers whose result
// also depends on x directly (SiLU) stay NaN.
template <typename V>
inline typename V::F exp_lanes(typename V::F x) {
  x = V::min(V::max(x, V::set1(-103.0f)), V::set1(89.0f));
  const typename V::F n = V::round(V::mul(x, V::set1(1.44269504088896341f)));
  const typename V::F minus_n = V::sub(V::set1(0.0f), n);
  // ln 2 split into a float and the float nearest the rest: r carries ~40 bits of ln 2 through two fmas.
  typename V::F r = V::fmadd(minus_n, V::set1(0.693147182464599609375f), x);
  r = V::fmadd(minus_n, V::set1(-1.904654299957768e-09f), r);
  constexpr float kInverseFactorial[] = {1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f};
  typename V::F p = V::set1(kInverseFactorial[0]);
  for (int k = 1; k < 8; ++k) p = V::fmadd(p, r, V::set1(kInverseFactorial[k]));
  const typename V::F n_low = V::floor(V::mul(n, V::set1(0.5f)));
  return V::mul(V::mul(p, V::pow2(n_low)), V::pow2(V::sub(n, n_low)));
}

// w[i] = e^(w[i] - shift) for i < n (attention's softmax numerators, shift their max); returns their sum.
template <typename V>
float exp_shifted_kernel(float* w, std::int64_t n, float shift) {
  const typename V::F vshift = V::set1(shift);
  typename V::F acc = V::set1(0.0f);
  std::int64_t i = 0;
  for (; i + V::kLanes <= n; i += V::kLanes) {
    const typename V::F e = exp_lanes<V>(V::sub(V::load(w + i), vshift));
    V::store(w + i, e);
    acc = V::add(acc, e);
  }
  float lanes[V::kLanes];
  V::store(lanes, acc);
  float sum = 0.0f;
  for (float v : lanes) sum += v;
  if (i < n) {
    float tail[V::kLanes] = {};
    std::copy(w + i, w + n, tail);
    V::store(tail, exp_lanes<V>(V::sub(V::load(tail), vshift)));
    for (std::int64_t j = 0; j < n - i; ++j) sum += w[i + j] = tail[j];
  }
  return sum;
}

// Backend::rms_norm: y = x / sqrt(mean(x^2) + eps) (* weight) for `rows` rows of `cols`; x may be y. Eight rows'
// sums of squares first, then their scaling, so the rows' reduce / sqrt / divide chains overlap (a norm of a few
// short rows is latency, not arithmetic). A last partial register goes through a zero-padded copy.
template <typename V>
void rms_norm_kernel(const float* x, const float* weight, std::int64_t rows, std::int64_t cols, float eps, float* y) {
  constexpr std::int64_t kRows = 8;
  const std::int64_t whole = cols / V::kLanes * V::kLanes;
  auto load_tail = [&](const float* row) {
    float t[V::kLanes] = {};
    std::copy(row + whole, row + cols, t);
    return V::load(t);
  };
  for (std::int64_t r0 = 0; r0 < rows; r0 += kRows) {
    const std::int64_t n = std::min(kRows, rows - r0);
    float inv_rms[kRows];
    for (std::int64_t i = 0; i < n; ++i) {
      const float* xr = x + (r0 + i) * cols;
      typename V::F acc = V::set1(0.0f);
      for (std::int64_t k = 0; k < whole; k += V::kLanes) acc = V::fmadd(V::load(xr + k), V::load(xr + k), acc);
      if (whole < cols) acc = V::fmadd(load_tail(xr), load_tail(xr), acc);
      inv_rms[i] = 1.0f / std::sqrt(V::hsum(acc) / static_cast<float>(cols) + eps);
    }
    for (std::int64_t i = 0; i < n; ++i) {
      const float* xr = x + (r0 + i) * cols;
      float* yr = y + (r0 + i) * cols;
      const typename V::F vinv = V::set1(inv_rms[i]);
      for (std::int64_t k = 0; k < whole; k += V::kLanes) {
        typename V::F v = V::mul(V::load(xr + k), vinv);
        if (weight) v = V::mul(v, V::load(weight + k));
        V::store(yr + k, v);
      }
      if (whole < cols) {
        typename V::F v = V::mul(load_tail(xr), vinv);
        if (weight) v = V::mul(v, load_tail(weight));
        float t[V::kLanes];
        V::store(t, v);
        std::copy(t, t + (cols - whole), yr + whole);
      }
    }
  }
}

namespace detail {

// Applies `op(gate, up) -> new gate` to registers over [begin, end) of gate / up, the last partial register
// through zero-padded copies.
template <typename V, typename Op>
inline void gate_span(float* gate, const float* up, std::int64_t begin, std::int64_t end, Op op) {
  std::int64_t i = begin;
  for (; i + V::kLanes <= end; i += V::kLanes) V::store(gate + i, op(V::load(gate + i), V::load(up + i)));
  if (i == end) return;
  float g[V::kLanes] = {}, u[V::kLanes] = {};
  std::copy(gate + i, gate + end, g);
  std::copy(up + i, up + end, u);
  V::store(g, op(V::load(g), V::load(u)));
  std::copy(g, g + (end - i), gate + i);
}

}  // namespace detail

// Backend::gated_activation: gate[i] = act(gate[i]) * up[i]. Long spans (prefill) are split across threads.
template <typename V>
void gated_activation_kernel(int threads, float* gate, const float* up, std::int64_t n, bool relu_squared) {
  constexpr std::int64_t kChunk = 8192;   // a multiple of every lane count; small enough to balance 2 threads
  const std::int64_t chunks = (n + kChunk - 1) / kChunk;
  const typename V::F zero = V::set1(0.0f), one = V::set1(1.0f);
  parallel_for(chunks, chunks > 4 ? threads : 1, [&](std::int64_t c) {
    const std::int64_t begin = c * kChunk, end = std::min(n, begin + kChunk);
    if (relu_squared) {
      // max(g, 0) is +0 for g <= 0 and for NaN, as the reference's (g > 0 ? g * g : 0).
      detail::gate_span<V>(gate, up, begin, end, [&](typename V::F g, typename V::F u) {
        const typename V::F positive = V::max(g, zero);
        return V::mul(V::mul(positive, positive), u);
      });
    } else {
      detail::gate_span<V>(gate, up, begin, end, [&](typename V::F g, typename V::F u) {
        const typename V::F e = exp_lanes<V>(V::sub(zero, g));
        return V::mul(V::div(g, V::add(one, e)), u);
      });
    }
  });
}

namespace detail {

// cos / sin of the positions a thread has rotated so far, for one (freq_base, rope_dims, pair layout): every layer
// rotates Q and K at the same positions, so a position's table is computed once, not twice per layer and forward.
// Per position: neox rotates (i, i + half) with cos[i], sin[i]; adjacent pairs (2i, 2i+1) use cos[i] twice and
// -sin[i], +sin[i], so x * cos + swap_pairs(x) * sin gives both outputs of a pair. Each row is padded by `pad`
// floats, so a vector load over a partial last register stays inside it.
class RopeTables {
 public:
  void configure(float freq_base, std::int64_t rope_dims, bool neox, std::int64_t pad) {
    if (freq_base == freq_base_ && rope_dims == dims_ && neox == neox_ && pad == pad_) return;
    freq_base_ = freq_base, dims_ = rope_dims, neox_ = neox, pad_ = pad;
    width_ = (neox ? rope_dims / 2 : rope_dims) + pad;
    inv_freq_.resize(static_cast<std::size_t>(rope_dims / 2));
    for (std::int64_t i = 0; i < rope_dims / 2; ++i)
      inv_freq_[static_cast<std::size_t>(i)] = std::pow(static_cast<double>(freq_base), -2.0 * i / rope_dims);
    cos_.clear(), sin_.clear(), filled_.clear();
  }
  // The table of `position` (the reference's double-precision formula, so rotations match it bit for bit).
  void at(std::int32_t position, const float** cos_row, const float** sin_row) {
    const auto p = static_cast<std::size_t>(position);
    if (p >= filled_.size()) {
      const std::size_t n = std::max(p + 1, filled_.size() * 2);
      filled_.resize(n, 0);
      cos_.resize(n * static_cast<std::size_t>(width_), 0.0f);
      sin_.resize(cos_.size(), 0.0f);
    }
    float* c = cos_.data() + p * static_cast<std::size_t>(width_);
    float* s = sin_.data() + p * static_cast<std::size_t>(width_);
    if (!filled_[p]) {
      for (std::int64_t i = 0; i < dims_ / 2; ++i) {
        const double theta = position * inv_freq_[static_cast<std::size_t>(i)];
        const float cv = static_cast<float>(std::cos(theta)), sv = static_cast<float>(std::sin(theta));
        if (neox_) {
          c[i] = cv, s[i] = sv;
        } else {
          c[2 * i] = c[2 * i + 1] = cv;
          s[2 * i] = -sv, s[2 * i + 1] = sv;
        }
      }
      filled_[p] = 1;
    }
    *cos_row = c, *sin_row = s;
  }

 private:
  float freq_base_ = 0.0f;
  std::int64_t dims_ = -1, width_ = 0, pad_ = 0;
  bool neox_ = false;
  std::vector<double> inv_freq_;
  std::vector<float> cos_, sin_;
  std::vector<std::uint8_t> filled_;
};

}  // namespace detail

// Backend::rope: only the rotation is vectorized; cos / sin come from detail::RopeTables (the reference's values).
template <typename V>
void rope_kernel(int threads, float* x, std::int64_t rows, std::int64_t n_heads, std::int64_t head_dim,
                 std::int64_t rope_dims, const std::int32_t* positions, float freq_base, bool neox) {
  const std::int64_t half = rope_dims / 2;
  for (std::int64_t r = 0; r < rows; ++r)
    if (positions[r] < 0) throw std::invalid_argument("rope: negative position");
  parallel_for(rows, threads_for_work(rows * n_heads * head_dim * 4, threads), [&](std::int64_t r) {
    thread_local detail::RopeTables tables;
    tables.configure(freq_base, rope_dims, neox, V::kLanes);
    const float* cos_t;
    const float* sin_t;
    tables.at(positions[r], &cos_t, &sin_t);
    for (std::int64_t h = 0; h < n_heads; ++h) {
      float* head = x + (r * n_heads + h) * head_dim;
      if (neox) {
        // a = x0 * c - x1 * s, b = x0 * s + x1 * c on (head[i], head[i + half]).
        auto rotate = [&](float* x0p, float* x1p, const float* cp, const float* sp) {
          const typename V::F x0 = V::load(x0p), x1 = V::load(x1p), c = V::load(cp), s = V::load(sp);
          V::store(x0p, V::sub(V::mul(x0, c), V::mul(x1, s)));
          V::store(x1p, V::add(V::mul(x0, s), V::mul(x1, c)));
        };
        std::int64_t i = 0;
        for (; i + V::kLanes <= half; i += V::kLanes) rotate(head + i, head + half + i, &cos_t[i], &sin_t[i]);
        if (i < half) {
          float x0[V::kLanes] = {}, x1[V::kLanes] = {};
          std::copy(head + i, head + half, x0);
          std::copy(head + half + i, head + rope_dims, x1);
          rotate(x0, x1, &cos_t[i], &sin_t[i]);
          std::copy(x0, x0 + (half - i), head + i);
          std::copy(x1, x1 + (half - i), head + half + i);
        }
      } else {
        auto rotate = [&](float* xp, const float* cp, const float* sp) {
          const typename V::F v = V::load(xp);
          V::store(xp, V::add(V::mul(v, V::load(cp)), V::mul(V::swap_pairs(v), V::load(sp))));
        };
        std::int64_t j = 0;
        for (; j + V::kLanes <= rope_dims; j += V::kLanes) rotate(head + j, &cos_t[j], &sin_t[j]);
        if (j < rope_dims) {   // rope_dims is even and j a multiple of the lanes: pairs stay whole
          float v[V::kLanes] = {};
          std::copy(head + j, head + rope_dims, v);
          rotate(v, &cos_t[j], &sin_t[j]);
          std::copy(v, v + (rope_dims - j), head + j);
        }
      }
    }
  });
}

}  // namespace bitrun
