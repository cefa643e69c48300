#include "bitrun/engine.hpp"

#include "bitrun/error.hpp"

namespace bitrun {

Engine::Engine(const Model& model) : model_(model), transformer_(model) {}

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
  it->second.finish = FinishReason::Cancelled;
  it->second.cache.reset();
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
    // Re-decoding from `position` (block diffusion) forgets what the cache held from there on.
    seq.cache->truncate(req.position);
    const auto base = static_cast<std::int32_t>(rows_.size());
    for (std::int32_t i = 0; i < n; ++i) {
      const std::int32_t pos = req.position + i;
      const std::int32_t limit = req.attention == StepAttention::Causal ? pos + 1 : req.position + n;
      rows_.push_back({req.tokens[static_cast<std::size_t>(i)], pos, limit, seq.cache.get()});
    }
    const std::size_t first = logit_rows_.size();
    for (std::int32_t r : req.logit_rows) {
      if (r < 0 || r >= n) throw Error("engine: logit row " + std::to_string(r) + " outside the step");
      logit_rows_.push_back(base + r);
    }
    plan.push_back({&seq, id, std::move(req), first});
  }
  last_rows_ = static_cast<std::int64_t>(rows_.size());
  if (plan.empty()) return false;

  const std::size_t vocab = static_cast<std::size_t>(model_.hparams().n_vocab);
  logits_.resize(logit_rows_.size() * vocab);
  transformer_.forward(rows_, logit_rows_, logits_.data());

  for (Planned& p : plan) {
    const std::span<const float> mine(logits_.data() + p.first_logit * vocab, p.request.logit_rows.size() * vocab);
    std::vector<std::int32_t> tokens = p.seq->session->consume(StepLogits{static_cast<std::int32_t>(vocab), mine});
    if (!tokens.empty() && p.seq->sink) p.seq->sink(p.id, tokens);
    if (p.seq->finish == FinishReason::None) p.seq->finish = p.seq->session->finished();   // the sink may cancel
    if (p.seq->finish != FinishReason::None) p.seq->cache.reset();   // finished sequences hold no memory
  }
  return true;
}

}  // namespace bitrun
