#include "bitrun/model/perplexity.hpp"

#include <cmath>
#include <sstream>

#include "bitrun/model/kv_cache.hpp"
#include "bitrun/engine/sampler.hpp"
#include "bitrun/tokenizer/tokenizer.hpp"
#include "bitrun/model/transformer.hpp"

namespace bitrun {

double PerplexityResult::perplexity() const { return std::exp(mean_nll()); }

std::vector<std::string> nonempty_lines(const std::string& text, std::int64_t max_lines) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const char* ws = " \t\r\n\f\v";
    auto b = line.find_first_not_of(ws);
    if (b == std::string::npos) continue;
    lines.push_back(line.substr(b, line.find_last_not_of(ws) - b + 1));
    if (max_lines > 0 && static_cast<std::int64_t>(lines.size()) == max_lines) break;
  }
  return lines;
}

PerplexityResult score_lines(Transformer& transformer, const std::vector<std::string>& lines, std::int64_t max_tokens,
                             const LineLogitsSink& sink, KvCacheType kv_cache) {
  const Model& model = transformer.model();
  const std::int64_t n_vocab = model.hparams().n_vocab;
  PerplexityResult result;
  std::vector<float> logits;
  for (const auto& line : lines) {
    std::vector<std::int32_t> ids = model.tokenizer().encode(line, /*add_bos=*/true, /*parse_special=*/false);
    if (static_cast<std::int64_t>(ids.size()) > max_tokens) ids.resize(static_cast<std::size_t>(max_tokens));
    if (ids.size() < 2) continue;
    KvCache cache(model, static_cast<std::int64_t>(ids.size()), kv_cache);
    std::vector<ForwardRow> rows(ids.size());
    std::vector<std::int32_t> wanted(ids.size() - 1);
    for (std::size_t i = 0; i < ids.size(); ++i)
      rows[i] = ForwardRow{ids[i], static_cast<std::int32_t>(i), static_cast<std::int32_t>(i + 1), &cache};
    for (std::size_t i = 0; i + 1 < ids.size(); ++i) wanted[i] = static_cast<std::int32_t>(i);
    logits.resize(wanted.size() * static_cast<std::size_t>(n_vocab));
    transformer.forward(rows, wanted, logits.data());
    if (sink) sink(ids, logits);
    for (std::size_t i = 0; i < wanted.size(); ++i) {
      const std::span<const float> row(logits.data() + i * static_cast<std::size_t>(n_vocab),
                                       static_cast<std::size_t>(n_vocab));
      result.total_nll += log_sum_exp(row) - row[static_cast<std::size_t>(ids[i + 1])];
    }
    result.tokens += static_cast<std::int64_t>(wanted.size());
    ++result.lines;
  }
  return result;
}

}  // namespace bitrun
