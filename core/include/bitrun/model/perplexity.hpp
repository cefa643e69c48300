// Perplexity of a model on text. The protocol (documented in docs/models.md): every non-empty line, stripped of
// surrounding white space, is scored on its own as BOS + line, truncated to `max_tokens` tokens; the score is
// the mean negative log-likelihood of each token given the ones before it, over all lines together.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "bitrun/model/kv_layer_view.hpp"

namespace bitrun {

class Transformer;

struct PerplexityResult {
  double total_nll = 0.0;
  std::int64_t tokens = 0;     // predicted tokens (every token after BOS)
  std::int64_t lines = 0;
  double mean_nll() const { return tokens ? total_nll / static_cast<double>(tokens) : 0.0; }
  double perplexity() const;
};

// The first `max_lines` non-empty lines (all when max_lines <= 0), stripped.
std::vector<std::string> nonempty_lines(const std::string& text, std::int64_t max_lines);

// Called once per scored line with its token ids (BOS first) and the logits of every row but the last
// ((ids.size() - 1) x n_vocab, row i predicting ids[i + 1]).
using LineLogitsSink = std::function<void(std::span<const std::int32_t> ids, std::span<const float> logits)>;

PerplexityResult score_lines(Transformer& transformer, const std::vector<std::string>& lines, std::int64_t max_tokens,
                             const LineLogitsSink& sink = {}, KvCacheType kv_cache = KvCacheType::F16);

}  // namespace bitrun
