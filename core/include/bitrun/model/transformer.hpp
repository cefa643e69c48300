// The transformer graph, written once for every architecture: it reads the ArchitectureSpec flags and calls the
// backend's kernels. A forward pass takes rows from any number of sequences (each with its own KV cache), which
// is how the engine batches requests together.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "bitrun/model/kv_cache.hpp"
#include "bitrun/model/model.hpp"

namespace bitrun {

struct ForwardRow {
  std::int32_t token = 0;
  std::int32_t position = 0;      // K/V of this row are written at this position of `cache`
  std::int32_t attn_limit = 0;    // the row attends to positions [0, attn_limit): position+1 for causal rows
  KvCache* cache = nullptr;
};

class Transformer {
 public:
  explicit Transformer(const Model& model);

  // Runs `rows` through the model and writes the logits of rows[logit_rows[i]] to logits[i * n_vocab ...]; every
  // row's K/V go into its cache, but only the logit rows run the last layer past them. Rows of one sequence must be
  // consecutive. Throws Error when a row's position or limit exceeds its cache.
  void forward(std::span<const ForwardRow> rows, std::span<const std::int32_t> logit_rows, float* logits);

  const Model& model() const { return model_; }

 private:
  void project(const Linear& lin, const float* x, std::int64_t n, QuantizedActivations* quantized, float* y);

  const Model& model_;
  // Scratch reused across calls to avoid reallocating per token.
  std::vector<float> x_, h_, q_, k_, v_, attn_, gate_, up_, tmp_, lrc_t_, lrc_y_;
  QuantizedActivations qa_;
};

}  // namespace bitrun
