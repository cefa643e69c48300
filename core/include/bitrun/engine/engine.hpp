// The engine: owns the KV caches of many sequences and runs one forward per step that merges the rows every active
// sequence asked for (continuous batching), so concurrent requests share each weight load. Decoding policies are
// DecodeSessions (decoder plugins); the engine truncates each cache to the step's position, runs the graph, hands
// each session its logits and reports the tokens that became final. Sequences can be added and cancelled between
// any two steps. Finished sequences leave their cache and tokens in a small prefix pool: a new sequence whose
// first step starts with the same tokens (a shared system prompt, a repeated request) copies those K/V rows
// instead of recomputing them; only K/V computed under the same attention contract (causal, or block-causal on the
// same block grid, whole blocks only) and stored in the same format (KvCacheType) are shared. Per-sequence statistics (forwards, rows, tokens) stay
// queryable until the sequence is forgotten. Not thread-safe: one thread drives it (the server's scheduler serialises requests onto it).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bitrun/plugin/decoder.hpp"
#include "bitrun/model/kv_cache.hpp"
#include "bitrun/model/transformer.hpp"

namespace bitrun {

// What the engine did for one sequence.
struct SequenceStats {
  std::int64_t forwards = 0;   // engine steps (merged forwards) the sequence took part in
  std::int64_t rows = 0;       // rows computed for it (prompt positions taken from the prefix pool excluded)
  std::int64_t tokens = 0;     // tokens it emitted
  std::int64_t reused = 0;     // prompt positions copied from the prefix pool
  double tokens_per_forward() const { return forwards ? static_cast<double>(tokens) / static_cast<double>(forwards) : 0.0; }
};

class Engine {
 public:
  using SequenceId = std::int64_t;
  // Called with the tokens of a sequence as they become final (possibly several at once, for block decoders).
  using TokenSink = std::function<void(SequenceId, const std::vector<std::int32_t>&)>;

  // prefix_pool: how many finished sequences' caches to keep for prefix reuse (0 disables it). kv_cache: the
  // storage of every sequence's cache (kv_cache.type).
  explicit Engine(const Model& model, std::size_t prefix_pool = 4, KvCacheType kv_cache = KvCacheType::F16);
  KvCacheType kv_cache_type() const { return kv_cache_type_; }

  // Adds a sequence decoded by `session`, with a KV cache of `context_size` positions. Returns its id.
  SequenceId add(std::unique_ptr<DecodeSession> session, std::int64_t context_size, TokenSink sink);
  // Finishes the sequence with FinishReason::Cancelled and frees its cache; unknown or finished ids are ignored.
  // May be called from a TokenSink (e.g. when a stop string appears).
  void cancel(SequenceId id);
  // One merged forward for every active sequence. Returns false when none was active. A sequence that finished
  // in this step stays queryable through finish_reason() until forgotten. A session that throws, or asks for an
  // invalid step, finishes alone with FinishReason::Error (its message in error()); the others go on. Only a
  // failure of the shared forward itself leaves step() as an exception.
  bool step();
  // FinishReason::None while running; the reason once finished or cancelled. Error for an unknown id.
  FinishReason finish_reason(SequenceId id) const;
  // Why a sequence finished with FinishReason::Error; empty otherwise. Error for an unknown id.
  const std::string& error(SequenceId id) const;
  // Forwards, rows and tokens of a sequence so far (also after it finished). Error for an unknown id.
  const SequenceStats& stats(SequenceId id) const;
  // The K/V cache of a running sequence, for inspection (tests, debugging). Error once it finished.
  const KvCache& cache(SequenceId id) const;
  void forget(SequenceId id);

  std::size_t active() const;
  // Inside a TokenSink call: the logprobs of the tokens it received (empty unless the request asked for them).
  const std::vector<TokenLogprob>& sink_logprobs() const { return sink_logprobs_; }
  // Rows computed by the last step (the batch size of its forward).
  std::int64_t last_step_rows() const { return last_rows_; }
  // Prompt positions taken from the prefix pool instead of computed, since the engine started.
  std::int64_t reused_positions() const { return reused_; }

 private:
  // The attention contract a sequence's K/V follow, set by its first step: causal (0), block-causal on a grid of
  // that block size (> 0), or none that can be shared (-1).
  static constexpr std::int32_t kNoContract = -1;
  struct Sequence {
    std::unique_ptr<DecodeSession> session;
    std::unique_ptr<KvCache> cache;   // moved to the prefix pool when the sequence ends
    std::vector<std::int32_t> tokens; // the token fed at each cached position
    TokenSink sink;
    FinishReason finish = FinishReason::None;
    std::string error;                // set with FinishReason::Error
    bool started = false;
    std::int32_t contract = kNoContract;
    // Leading positions whose K/V equal a fresh forward of `tokens` under `contract`: what may be pooled.
    std::int64_t exact = 0;
    SequenceStats stats;
  };
  struct Pooled {
    std::unique_ptr<KvCache> cache;
    std::vector<std::int32_t> tokens;   // the exact positions only
    std::int32_t contract;
  };
  // Copies the longest pooled prefix of req's tokens (same contract) into seq's cache and drops those rows from req.
  void reuse_prefix(Sequence& seq, StepRequest& req);
  // Validates the step, prepares the cache and appends its rows to rows_.
  void plan_rows(SequenceId id, Sequence& seq, StepRequest& req);
  void retire(Sequence& seq, FinishReason reason);
  const Model& model_;
  Transformer transformer_;
  std::map<SequenceId, Sequence> sequences_;
  SequenceId next_id_ = 1;
  std::int64_t last_rows_ = 0, reused_ = 0;
  std::size_t pool_capacity_;
  KvCacheType kv_cache_type_;
  std::vector<Pooled> pool_;   // most recently finished last
  std::vector<ForwardRow> rows_;
  std::vector<std::int32_t> logit_rows_;
  std::vector<float> logits_;
  std::vector<TokenLogprob> sink_logprobs_;
};

}  // namespace bitrun
