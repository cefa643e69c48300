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
  const std::int64_t d = hp.n_embd, q_dim = hp.n_head * hp.head_dim, kv_dim = hp.n_head_kv * hp.head_dim;
  if (n == 0) return;

  std::vector<std::int32_t> positions(static_cast<std::size_t>(n)), limits(static_cast<std::size_t>(n));
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
  }

  x_.resize(static_cast<std::size_t>(n * d));
  for (std::int64_t r = 0; r < n; ++r) model_.embed(rows[r].token, x_.data() + r * d);
  h_.resize(x_.size());
  q_.resize(static_cast<std::size_t>(n * q_dim));
  k_.resize(static_cast<std::size_t>(n * kv_dim));
  v_.resize(static_cast<std::size_t>(n * kv_dim));
  attn_.resize(q_.size());
  gate_.resize(static_cast<std::size_t>(n * hp.n_ff));
  up_.resize(gate_.size());
  tmp_.resize(x_.size());

  for (std::int64_t l = 0; l < hp.n_layer; ++l) {
    const LayerWeights& w = model_.layers()[static_cast<std::size_t>(l)];

    // Attention block.
    be.rms_norm(x_.data(), w.attn_norm.data(), n, d, hp.rms_eps, h_.data());
    qa_.rows = 0;
    project(w.wq, h_.data(), n, &qa_, q_.data());
    project(w.wk, h_.data(), n, &qa_, k_.data());
    project(w.wv, h_.data(), n, &qa_, v_.data());
    be.rope(q_.data(), n, hp.n_head, hp.head_dim, hp.rope_dims, positions.data(), hp.rope_freq_base, arch.neox_rope);
    be.rope(k_.data(), n, hp.n_head_kv, hp.head_dim, hp.rope_dims, positions.data(), hp.rope_freq_base,
            arch.neox_rope);
    // K after RoPE and V go into each row's cache in that cache's format (F16 or int8).
    for (std::int64_t r = 0; r < n; ++r)
      rows[r].cache->store(l, rows[r].position, k_.data() + r * kv_dim, v_.data() + r * kv_dim);
    // Consecutive rows of the same sequence share one attention call against their cache.
    for (std::int64_t start = 0; start < n;) {
      std::int64_t end = start + 1;
      while (end < n && rows[end].cache == rows[start].cache) ++end;
      const KvCache& cache = *rows[start].cache;
      be.attention(q_.data() + start * q_dim, end - start, cache.layer(l), limits.data() + start, hp.n_head,
                   hp.n_head_kv, hp.head_dim, attn_.data() + start * q_dim);
      start = end;
    }
    if (arch.sub_norms) be.rms_norm(attn_.data(), w.attn_sub_norm.data(), n, q_dim, hp.rms_eps, attn_.data());
    qa_.rows = 0;
    project(w.wo, attn_.data(), n, &qa_, tmp_.data());
    for (std::size_t i = 0; i < x_.size(); ++i) x_[i] += tmp_[i];

    // Feed-forward block.
    be.rms_norm(x_.data(), w.ffn_norm.data(), n, d, hp.rms_eps, h_.data());
    qa_.rows = 0;
    project(w.w_gate, h_.data(), n, &qa_, gate_.data());
    project(w.w_up, h_.data(), n, &qa_, up_.data());
    be.gated_activation(gate_.data(), up_.data(), n * hp.n_ff, arch.activation == FfnActivation::ReluSquared);
    if (arch.sub_norms) be.rms_norm(gate_.data(), w.ffn_sub_norm.data(), n, hp.n_ff, hp.rms_eps, gate_.data());
    qa_.rows = 0;
    project(w.w_down, gate_.data(), n, &qa_, tmp_.data());
    for (std::size_t i = 0; i < x_.size(); ++i) x_[i] += tmp_[i];
  }
  for (std::int64_t r = 0; r < n; ++r) rows[r].cache->extend_to(rows[r].position + 1);

  // Only the rows whose logits are wanted go through the final norm and the (large) output projection.
  const std::int64_t n_out = static_cast<std::int64_t>(logit_rows.size());
  std::vector<float> selected(static_cast<std::size_t>(n_out * d));
  for (std::int64_t i = 0; i < n_out; ++i) {
    const std::int32_t r = logit_rows[static_cast<std::size_t>(i)];
    if (r < 0 || r >= n) throw Error("forward: logit row " + std::to_string(r) + " out of range");
    be.rms_norm(x_.data() + r * d, model_.output_norm().data(), 1, d, hp.rms_eps, selected.data() + i * d);
  }
  QuantizedActivations quantized_out;
  project(model_.output(), selected.data(), n_out, &quantized_out, logits);
}

}  // namespace bitrun
