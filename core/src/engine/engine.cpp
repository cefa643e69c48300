#include "bitrun/engine/engine.hpp"

#include <algorithm>

#include "bitrun/base/error.hpp"

namespace bitrun {
namespace {

// The contract the K/V written by a step follow (Engine::Sequence::contract).
std::int32_t step_contract(const StepRequest& req) {
  switch (req.attention) {
    case StepAttention::Causal: return 0;
    case StepAttention::BlockCausal: return req.block_size;
    case StepAttention::Bidirectional: break;
  }
  return -1;
}

}  // namespace

Engine::Engine(const Model& model, std::size_t prefix_pool, KvCacheType kv_cache)
    : model_(model), transformer_(model), pool_capacity_(prefix_pool), kv_cache_type_(kv_cache) {}

void Engine::retire(Sequence& seq, FinishReason reason) {
  seq.finish = reason;
  if (!seq.cache) return;
  const std::int64_t exact = std::min(seq.exact, seq.cache->size());
  if (pool_capacity_ > 0 && seq.contract != kNoContract && exact > 0) {
    if (pool_.size() == pool_capacity_) pool_.erase(pool_.begin());   // least recently finished
    seq.tokens.resize(static_cast<std::size_t>(exact));
    pool_.push_back({std::move(seq.cache), std::move(seq.tokens), seq.contract});
  }
  seq.cache.reset();
}

void Engine::reuse_prefix(Sequence& seq, StepRequest& req) {
  if (seq.contract == kNoContract) return;
  // Keep at least the first row whose logits are wanted: its output must be computed.
  std::size_t limit = req.tokens.size() - 1;
  for (std::int32_t r : req.logit_rows) limit = std::min(limit, static_cast<std::size_t>(r));
  const Pooled* best = nullptr;
  std::size_t best_len = 0;
  for (const Pooled& p : pool_) {
    if (p.contract != seq.contract) continue;   // K/V computed under another attention pattern differ
    if (p.cache->type() != seq.cache->type()) continue;   // K/V stored in another format
    std::size_t len = 0;
    const std::size_t max = std::min(limit, p.tokens.size());
    while (len < max && p.tokens[len] == req.tokens[len]) ++len;
    // Block-causal K/V of a position depend on the whole block: only complete blocks carry over.
    if (seq.contract > 0) len -= len % static_cast<std::size_t>(seq.contract);
    if (len > best_len) best = &p, best_len = len;
  }
  if (!best) return;
  const auto n = static_cast<std::int32_t>(best_len);
  seq.cache->copy_prefix_from(*best->cache, n);
  seq.tokens.assign(req.tokens.begin(), req.tokens.begin() + n);
  req.tokens.erase(req.tokens.begin(), req.tokens.begin() + n);
  req.position = n;
  for (std::int32_t& r : req.logit_rows) r -= n;
  seq.exact = n;
  seq.stats.reused += n;
  reused_ += n;
}

Engine::SequenceId Engine::add(std::unique_ptr<DecodeSession> session, std::int64_t context_size, TokenSink sink) {
  if (!session) throw Error("engine: no decode session");
  Sequence seq;
  seq.session = std::move(session);
  seq.cache = std::make_unique<KvCache>(model_, context_size, kv_cache_type_);
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

const std::string& Engine::error(SequenceId id) const {
  auto it = sequences_.find(id);
  if (it == sequences_.end()) throw Error("engine: unknown sequence " + std::to_string(id));
  return it->second.error;
}

const SequenceStats& Engine::stats(SequenceId id) const {
  auto it = sequences_.find(id);
  if (it == sequences_.end()) throw Error("engine: unknown sequence " + std::to_string(id));
  return it->second.stats;
}

const KvCache& Engine::cache(SequenceId id) const {
  auto it = sequences_.find(id);
  if (it == sequences_.end() || !it->second.cache)
    throw Error("engine: sequence " + std::to_string(id) + " has no cache (unknown or finished)");
  return *it->second.cache;
}

void Engine::forget(SequenceId id) { sequences_.erase(id); }

std::size_t Engine::active() const {
  std::size_t n = 0;
  for (const auto& [id, s] : sequences_) n += s.finish == FinishReason::None;
  return n;
}

void Engine::plan_rows(SequenceId id, Sequence& seq, StepRequest& req) {
  const std::string who = "engine: sequence " + std::to_string(id);
  const auto n = static_cast<std::int32_t>(req.tokens.size());
  if (n == 0 || req.position < 0 || req.position + n > seq.cache->capacity())
    throw Error(who + " asked for " + std::to_string(n) + " rows at position " + std::to_string(req.position) +
                " in a context of " + std::to_string(seq.cache->capacity()));
  if (req.attention == StepAttention::BlockCausal && req.block_size < 1)
    throw Error(who + ": a block-causal step needs a block size (got " + std::to_string(req.block_size) + ")");
  if (req.cached_until != 0) {
    if (req.attention != StepAttention::Bidirectional) throw Error(who + ": cached_until needs bidirectional attention");
    if (req.cached_until < req.position + n || req.cached_until > seq.cache->size())
      throw Error(who + ": cached_until " + std::to_string(req.cached_until) + " is not a cached position after the " +
                  "step's rows (cache holds " + std::to_string(seq.cache->size()) + ")");
  }
  for (std::int32_t r : req.logit_rows)
    if (r < 0 || r >= n) throw Error(who + ": logit row " + std::to_string(r) + " outside the step");

  // Re-decoding from `position` (block diffusion) forgets what the cache held from there on, unless the step
  // reuses the cached positions after its rows.
  seq.cache->truncate(req.cached_until ? req.cached_until : req.position);
  if (!seq.started) {
    seq.started = true;
    seq.contract = step_contract(req);
    if (req.position == 0 && !pool_.empty()) reuse_prefix(seq, req);
  }
  const auto rows_now = static_cast<std::int32_t>(req.tokens.size());
  const std::int32_t end = req.position + rows_now;

  // The written K/V are exact under the sequence's contract only if the step follows that contract from an exact
  // prefix; a sub-block step leaves stale K/V around its rows.
  seq.exact = std::min<std::int64_t>(seq.exact, req.position);
  const std::int32_t contract = step_contract(req);
  const bool follows_contract = req.cached_until == 0 && contract != kNoContract && contract == seq.contract &&
                                (contract == 0 || req.position % contract == 0);
  if (follows_contract && seq.exact == req.position) seq.exact = end;

  if (req.cached_until) {
    seq.tokens.resize(static_cast<std::size_t>(req.cached_until));
    std::copy(req.tokens.begin(), req.tokens.end(), seq.tokens.begin() + req.position);
  } else {
    seq.tokens.resize(static_cast<std::size_t>(req.position));
    seq.tokens.insert(seq.tokens.end(), req.tokens.begin(), req.tokens.end());
  }
  for (std::int32_t i = 0; i < rows_now; ++i) {
    const std::int32_t pos = req.position + i;
    std::int32_t limit = pos + 1;
    if (req.attention == StepAttention::Bidirectional) limit = req.cached_until ? req.cached_until : end;
    if (req.attention == StepAttention::BlockCausal) limit = std::min(end, (pos / req.block_size + 1) * req.block_size);
    rows_.push_back({req.tokens[static_cast<std::size_t>(i)], pos, limit, seq.cache.get()});
  }
  ++seq.stats.forwards;
  seq.stats.rows += rows_now;
}

bool Engine::step() {
  struct Planned {
    Sequence* seq;
    SequenceId id;
    std::size_t first_logit;   // index of its first logit row in logits_
    std::size_t logit_count;   // rows the session asked for
  };
  std::vector<Planned> plan;
  rows_.clear();
  logit_rows_.clear();
  // A session's own failure ends that sequence only.
  auto fail = [this](Sequence& seq, const char* what) {
    seq.error = what;
    retire(seq, FinishReason::Error);
  };
  for (auto& [id, seq] : sequences_) {
    if (seq.finish != FinishReason::None) continue;
    const std::size_t base = rows_.size();
    try {
      StepRequest req = seq.session->next_step();
      plan_rows(id, seq, req);
      const std::size_t first = logit_rows_.size();
      for (std::int32_t r : req.logit_rows) logit_rows_.push_back(static_cast<std::int32_t>(base) + r);
      plan.push_back({&seq, id, first, req.logit_rows.size()});
    } catch (const std::exception& e) {
      rows_.resize(base);   // plan_rows validates before it appends, but be sure nothing of it is computed
      fail(seq, e.what());
    }
  }
  last_rows_ = static_cast<std::int64_t>(rows_.size());
  if (plan.empty()) return false;

  const std::size_t vocab = static_cast<std::size_t>(model_.hparams().n_vocab);
  logits_.resize(logit_rows_.size() * vocab);
  transformer_.forward(rows_, logit_rows_, logits_.data());

  for (Planned& p : plan) {
    const std::span<const float> mine(logits_.data() + p.first_logit * vocab, p.logit_count * vocab);
    std::vector<std::int32_t> tokens;
    try {
      tokens = p.seq->session->consume(StepLogits{static_cast<std::int32_t>(vocab), mine});
      sink_logprobs_ = p.seq->session->take_logprobs();
    } catch (const std::exception& e) {
      fail(*p.seq, e.what());
      continue;
    }
    p.seq->stats.tokens += static_cast<std::int64_t>(tokens.size());
    if (!tokens.empty() && p.seq->sink) p.seq->sink(p.id, tokens);
    if (p.seq->finish != FinishReason::None) continue;   // the sink cancelled it
    if (p.seq->session->finished() != FinishReason::None) retire(*p.seq, p.seq->session->finished());
  }
  return true;
}

}  // namespace bitrun
