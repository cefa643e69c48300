#include "bitrun/engine.hpp"

#include <algorithm>

#include "bitrun/error.hpp"

namespace bitrun {

Engine::Engine(const Model& model, std::size_t prefix_pool)
    : model_(model), transformer_(model), pool_capacity_(prefix_pool) {}

void Engine::retire(Sequence& seq, FinishReason reason) {
  seq.finish = reason;
  if (!seq.cache) return;
  if (pool_capacity_ > 0 && !seq.tokens.empty()) {
    if (pool_.size() == pool_capacity_) pool_.erase(pool_.begin());   // least recently finished
    const auto cached = static_cast<std::size_t>(seq.cache->size());
    if (seq.tokens.size() > cached) seq.tokens.resize(cached);
    pool_.push_back({std::move(seq.cache), std::move(seq.tokens)});
  }
  seq.cache.reset();
}

void Engine::reuse_prefix(Sequence& seq, StepRequest& req) {
  // Keep at least the first row whose logits are wanted: its output must be computed.
  std::size_t limit = req.tokens.size() - 1;
  for (std::int32_t r : req.logit_rows) limit = std::min(limit, static_cast<std::size_t>(r));
  const Pooled* best = nullptr;
  std::size_t best_len = 0;
  for (const Pooled& p : pool_) {
    std::size_t len = 0;
    const std::size_t max = std::min({limit, p.tokens.size(), static_cast<std::size_t>(p.cache->size())});
    while (len < max && p.tokens[len] == req.tokens[len]) ++len;
    if (len > best_len) best = &p, best_len = len;
  }
  if (!best) return;
  seq.cache->copy_prefix_from(*best->cache, static_cast<std::int64_t>(best_len));
  seq.tokens.assign(req.tokens.begin(), req.tokens.begin() + static_cast<std::ptrdiff_t>(best_len));
  req.tokens.erase(req.tokens.begin(), req.tokens.begin() + static_cast<std::ptrdiff_t>(best_len));
  req.position = static_cast<std::int32_t>(best_len);
  for (std::int32_t& r : req.logit_rows) r -= static_cast<std::int32_t>(best_len);
  reused_ += static_cast<std::int64_t>(best_len);
}

Engine::SequenceId Engine::add(std::unique_ptr<DecodeSession> session, std::int64_t context_size, TokenSink sink) {
  if (!session) throw Error("engine: no decode session");
  Sequence seq;
  seq.session = std::move(session);
  seq.cache = std::make_unique<KvCache>(model_.hparams(), context_size);
  seq.sink = std::move(sink);
  seq.finish = seq.session->finished();
  const SequenceId id = next_id_++;
  sequences_.emplace(id, std::move(seq));
  return id;
}

void Engine::cancel(SequenceId id) {
  auto it = sequences_.find(id);
  if (it == sequences_.end() || it->second.finish != FinishReason::None) return;
  retire(it->second, FinishReason::Cancelled);
}

FinishReason Engine::finish_reason(SequenceId id) const {
  auto it = sequences_.find(id);
  if (it == sequences_.end()) throw Error("engine: unknown sequence " + std::to_string(id));
  return it->second.finish;
}

void Engine::forget(SequenceId id) { sequences_.erase(id); }

std::size_t Engine::active() const {
  std::size_t n = 0;
  for (const auto& [id, s] : sequences_) n += s.finish == FinishReason::None;
  return n;
}

bool Engine::step() {
  struct Planned {
    Sequence* seq;
    SequenceId id;
    StepRequest request;
    std::size_t first_logit;   // index of its first logit row in logits_
    std::size_t logit_count;   // rows the session asked for
  };
  std::vector<Planned> plan;
  rows_.clear();
  logit_rows_.clear();
  for (auto& [id, seq] : sequences_) {
    if (seq.finish != FinishReason::None) continue;
    StepRequest req = seq.session->next_step();
    const auto n = static_cast<std::int32_t>(req.tokens.size());
    if (n == 0 || req.position < 0 || req.position + n > seq.cache->capacity())
      throw Error("engine: sequence " + std::to_string(id) + " asked for " + std::to_string(n) + " rows at position " +
                  std::to_string(req.position) + " in a context of " + std::to_string(seq.cache->capacity()));
    const std::size_t asked = req.logit_rows.size();
    // Re-decoding from `position` (block diffusion) forgets what the cache held from there on.
    seq.cache->truncate(req.position);
    if (!seq.started && req.position == 0 && !pool_.empty()) reuse_prefix(seq, req);
    seq.started = true;
    const auto rows_now = static_cast<std::int32_t>(req.tokens.size());
    seq.tokens.resize(static_cast<std::size_t>(req.position));
    seq.tokens.insert(seq.tokens.end(), req.tokens.begin(), req.tokens.end());
    const auto base = static_cast<std::int32_t>(rows_.size());
    for (std::int32_t i = 0; i < rows_now; ++i) {
      const std::int32_t pos = req.position + i;
      const std::int32_t limit = req.attention == StepAttention::Causal ? pos + 1 : req.position + rows_now;
      rows_.push_back({req.tokens[static_cast<std::size_t>(i)], pos, limit, seq.cache.get()});
    }
    const std::size_t first = logit_rows_.size();
    for (std::int32_t r : req.logit_rows) {
      if (r < 0 || r >= rows_now) throw Error("engine: logit row " + std::to_string(r) + " outside the step");
      logit_rows_.push_back(base + r);
    }
    plan.push_back({&seq, id, std::move(req), first, asked});
  }
  last_rows_ = static_cast<std::int64_t>(rows_.size());
  if (plan.empty()) return false;

  const std::size_t vocab = static_cast<std::size_t>(model_.hparams().n_vocab);
  logits_.resize(logit_rows_.size() * vocab);
  transformer_.forward(rows_, logit_rows_, logits_.data());

  for (Planned& p : plan) {
    const std::span<const float> mine(logits_.data() + p.first_logit * vocab, p.logit_count * vocab);
    std::vector<std::int32_t> tokens = p.seq->session->consume(StepLogits{static_cast<std::int32_t>(vocab), mine});
    sink_logprobs_ = p.seq->session->take_logprobs();
    if (!tokens.empty() && p.seq->sink) p.seq->sink(p.id, tokens);
    if (p.seq->finish != FinishReason::None) continue;   // the sink cancelled it
    if (p.seq->session->finished() != FinishReason::None) retire(*p.seq, p.seq->session->finished());
  }
  return true;
}

}  // namespace bitrun
