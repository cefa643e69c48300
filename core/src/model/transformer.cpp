#include "bitrun/model/transformer.hpp"

#include <algorithm>

#include "bitrun/base/error.hpp"

namespace bitrun {

Transformer::Transformer(const Model& model) : model_(model) {}

// y (n x lin.rows) = lin(x) for n rows of lin.cols. `quantized` caches the int8 activations of x so that
// projections sharing an input (Q/K/V, gate/up) quantize it once; pass it already filled or with rows == 0.
void Transformer::project(const Linear& lin, const float* x, std::int64_t n, QuantizedActivations* quantized,
                          float* y) {
  const Backend& be = model_.backend();
  if (lin.ternary || lin.int8 || lin.q6_k) {
    if (quantized->rows != n || quantized->cols != lin.cols || quantized->block != lin.activation_block)
      be.quantize_activations(x, n, lin.cols, lin.cols, *quantized, lin.activation_block);
    if (lin.ternary) be.ternary_matmul(*lin.ternary, *quantized, y, lin.rows);
    else if (lin.int8) be.int8_matmul(*lin.int8, *quantized, y, lin.rows);
    else be.q6_k_matmul(*lin.q6_k, *quantized, y, lin.rows);
  } else {
    be.matmul_f32(lin.dense.data(), lin.rows, lin.cols, x, n, y, lin.rows);
  }
  if (lin.output_scale != 1.0f)
    for (std::int64_t i = 0; i < n * lin.rows; ++i) y[i] *= lin.output_scale;
  if (lin.lrc_rank > 0) {
    lrc_t_.resize(static_cast<std::size_t>(n * lin.lrc_rank));
    lrc_y_.resize(static_cast<std::size_t>(n * lin.rows));
    be.matmul_f32(lin.lrc_vt.data(), lin.lrc_rank, lin.cols, x, n, lrc_t_.data(), lin.lrc_rank);   // V^T x
    be.matmul_f32(lin.lrc_u.data(), lin.rows, lin.lrc_rank, lrc_t_.data(), n, lrc_y_.data(), lin.rows);
    for (std::size_t i = 0; i < lrc_y_.size(); ++i) y[i] += lrc_y_[i];
  }
}

void Transformer::forward(std::span<const ForwardRow> rows, std::span<const std::int32_t> logit_rows, float* logits) {
  const ModelHparams& hp = model_.hparams();
  const ArchitectureSpec& arch = model_.architecture();
  const Backend& be = model_.backend();
  const std::int64_t n = static_cast<std::int64_t>(rows.size());
  const std::int64_t n_out = static_cast<std::int64_t>(logit_rows.size());
  const std::int64_t d = hp.n_embd, q_dim = hp.n_head * hp.head_dim, kv_dim = hp.n_head_kv * hp.head_dim;
  if (n == 0) return;
  for (std::int32_t r : logit_rows)
    if (r < 0 || r >= n) throw Error("forward: logit row " + std::to_string(r) + " out of range");

  // Per row carried through the layers: position, attention limit and cache.
  std::vector<std::int32_t> positions(static_cast<std::size_t>(n)), limits(static_cast<std::size_t>(n));
  std::vector<KvCache*> caches(static_cast<std::size_t>(n));
  for (std::int64_t r = 0; r < n; ++r) {
    const ForwardRow& row = rows[static_cast<std::size_t>(r)];
    if (!row.cache) throw Error("forward: row without a KV cache");
    if (row.token < 0 || row.token >= hp.n_vocab)
      throw Error("forward: token id " + std::to_string(row.token) + " outside the vocabulary");
    if (row.position < 0 || row.position >= row.cache->capacity() || row.attn_limit < 1 ||
        row.attn_limit > row.cache->capacity())
      throw Error("forward: position " + std::to_string(row.position) + " / attention limit " +
                  std::to_string(row.attn_limit) + " outside the context of " +
                  std::to_string(row.cache->capacity()));
    row.cache->reserve(std::max<std::int64_t>(std::int64_t{row.position} + 1, row.attn_limit));
    positions[static_cast<std::size_t>(r)] = row.position;
    limits[static_cast<std::size_t>(r)] = row.attn_limit;
    caches[static_cast<std::size_t>(r)] = row.cache;
  }

  // Buffers hold the larger of the rows and the logit rows (which may repeat a row).
  const std::int64_t cap = std::max(n, n_out);
  x_.resize(static_cast<std::size_t>(cap * d));
  for (std::int64_t r = 0; r < n; ++r) model_.embed(rows[r].token, x_.data() + r * d);
  h_.resize(x_.size());
  q_.resize(static_cast<std::size_t>(cap * q_dim));
  k_.resize(static_cast<std::size_t>(n * kv_dim));
  v_.resize(static_cast<std::size_t>(n * kv_dim));
  attn_.resize(q_.size());
  gate_.resize(static_cast<std::size_t>(cap * hp.n_ff));
  up_.resize(gate_.size());
  tmp_.resize(x_.size());

  // In the last layer only the rows whose logits are wanted go on past their K/V: the others have written all
  // that later positions read, and nothing else of theirs reaches an output. (A prompt's rows but its last, the
  // known rows of a diffusion step, a commit pass's rows but one.) Row i then holds logit row i.
  std::int64_t m = n;   // rows in x_ / h_
  auto keep_logit_rows = [&] {
    std::vector<std::int32_t> kept_positions(static_cast<std::size_t>(n_out)), kept_limits(kept_positions.size());
    std::vector<KvCache*> kept_caches(kept_positions.size());
    // x_ and then h_ gather their rows into tmp_ (free between layers), which each swap hands back.
    for (std::vector<float>* rows_of : {&x_, &h_}) {
      for (std::int64_t i = 0; i < n_out; ++i)
        std::copy_n(rows_of->data() + logit_rows[static_cast<std::size_t>(i)] * d, d, tmp_.data() + i * d);
      std::swap(*rows_of, tmp_);
    }
    for (std::int64_t i = 0; i < n_out; ++i) {
      const auto r = static_cast<std::size_t>(logit_rows[static_cast<std::size_t>(i)]);
      kept_positions[static_cast<std::size_t>(i)] = positions[r];
      kept_limits[static_cast<std::size_t>(i)] = limits[r];
      kept_caches[static_cast<std::size_t>(i)] = caches[r];
    }
    positions = std::move(kept_positions);
    limits = std::move(kept_limits);
    caches = std::move(kept_caches);
    m = n_out;
  };

  for (std::int64_t l = 0; l < hp.n_layer; ++l) {
    const LayerWeights& w = model_.layers()[static_cast<std::size_t>(l)];
    const bool last = l + 1 == hp.n_layer;

    // Attention block. K and V of every row, K after RoPE, go into each row's cache in its format (F16 or int8).
    be.rms_norm(x_.data(), w.attn_norm.data(), m, d, hp.rms_eps, h_.data());
    qa_.rows = 0;
    project(w.wk, h_.data(), m, &qa_, k_.data());
    project(w.wv, h_.data(), m, &qa_, v_.data());
    be.rope(k_.data(), m, hp.n_head_kv, hp.head_dim, hp.rope_dims, positions.data(), hp.rope_freq_base,
            arch.neox_rope);
    for (std::int64_t r = 0; r < m; ++r)
      caches[r]->store(l, positions[r], k_.data() + r * kv_dim, v_.data() + r * kv_dim);
    if (last) {
      keep_logit_rows();
      qa_.rows = 0;
      if (m == 0) break;
    }
    project(w.wq, h_.data(), m, &qa_, q_.data());
    be.rope(q_.data(), m, hp.n_head, hp.head_dim, hp.rope_dims, positions.data(), hp.rope_freq_base, arch.neox_rope);
    // Consecutive rows of the same sequence share one attention call against their cache.
    for (std::int64_t start = 0; start < m;) {
      std::int64_t end = start + 1;
      while (end < m && caches[end] == caches[start]) ++end;
      be.attention(q_.data() + start * q_dim, end - start, caches[start]->layer(l), limits.data() + start, hp.n_head,
                   hp.n_head_kv, hp.head_dim, attn_.data() + start * q_dim);
      start = end;
    }
    if (arch.sub_norms) be.rms_norm(attn_.data(), w.attn_sub_norm.data(), m, q_dim, hp.rms_eps, attn_.data());
    qa_.rows = 0;
    project(w.wo, attn_.data(), m, &qa_, tmp_.data());
    for (std::int64_t i = 0; i < m * d; ++i) x_[i] += tmp_[i];

    // Feed-forward block.
    be.rms_norm(x_.data(), w.ffn_norm.data(), m, d, hp.rms_eps, h_.data());
    qa_.rows = 0;
    project(w.w_gate, h_.data(), m, &qa_, gate_.data());
    project(w.w_up, h_.data(), m, &qa_, up_.data());
    be.gated_activation(gate_.data(), up_.data(), m * hp.n_ff, arch.activation == FfnActivation::ReluSquared);
    if (arch.sub_norms) be.rms_norm(gate_.data(), w.ffn_sub_norm.data(), m, hp.n_ff, hp.rms_eps, gate_.data());
    qa_.rows = 0;
    project(w.w_down, gate_.data(), m, &qa_, tmp_.data());
    for (std::int64_t i = 0; i < m * d; ++i) x_[i] += tmp_[i];
  }
  if (hp.n_layer == 0) keep_logit_rows();
  for (std::int64_t r = 0; r < n; ++r) rows[r].cache->extend_to(rows[r].position + 1);
  if (n_out == 0) return;

  // The final norm and the (large) output projection, for the logit rows only.
  be.rms_norm(x_.data(), model_.output_norm().data(), n_out, d, hp.rms_eps, h_.data());
  QuantizedActivations quantized_out;
  project(model_.output(), h_.data(), n_out, &quantized_out, logits);
}

}  // namespace bitrun
