// The engine: owns the KV caches of many sequences and runs one forward per step that merges the rows every active
// sequence asked for (continuous batching), so concurrent requests share each weight load. Decoding policies are
// DecodeSessions (decoder plugins); the engine truncates each cache to the step's position, runs the graph, hands
// each session its logits and reports the tokens that became final. Sequences can be added and cancelled between
// any two steps. Finished sequences leave their cache and tokens in a small prefix pool: a new sequence whose
// first step starts with the same tokens (a shared system prompt, a repeated request) copies those K/V rows
// instead of recomputing them. Not thread-safe: one thread drives it (the server's scheduler serialises requests onto it).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "bitrun/decoder.hpp"
#include "bitrun/kv_cache.hpp"
#include "bitrun/transformer.hpp"

namespace bitrun {

class Engine {
 public:
  using SequenceId = std::int64_t;
  // Called with the tokens of a sequence as they become final (possibly several at once, for block decoders).
  using TokenSink = std::function<void(SequenceId, const std::vector<std::int32_t>&)>;

  // prefix_pool: how many finished sequences' caches to keep for prefix reuse (0 disables it).
  explicit Engine(const Model& model, std::size_t prefix_pool = 4);

  // Adds a sequence decoded by `session`, with a KV cache of `context_size` positions. Returns its id.
  SequenceId add(std::unique_ptr<DecodeSession> session, std::int64_t context_size, TokenSink sink);
  // Finishes the sequence with FinishReason::Cancelled and frees its cache; unknown or finished ids are ignored.
  // May be called from a TokenSink (e.g. when a stop string appears).
  void cancel(SequenceId id);
  // One merged forward for every active sequence. Returns false when none was active. A sequence that finished
  // in this step stays queryable through finish_reason() until forgotten.
  bool step();
  // FinishReason::None while running; the reason once finished or cancelled. Error for an unknown id.
  FinishReason finish_reason(SequenceId id) const;
  void forget(SequenceId id);

  std::size_t active() const;
  // Inside a TokenSink call: the logprobs of the tokens it received (empty unless the request asked for them).
  const std::vector<TokenLogprob>& sink_logprobs() const { return sink_logprobs_; }
  // Rows computed by the last step (the batch size of its forward).
  std::int64_t last_step_rows() const { return last_rows_; }
  // Prompt positions taken from the prefix pool instead of computed, since the engine started.
  std::int64_t reused_positions() const { return reused_; }

 private:
  struct Sequence {
    std::unique_ptr<DecodeSession> session;
    std::unique_ptr<KvCache> cache;   // moved to the prefix pool when the sequence ends
    std::vector<std::int32_t> tokens; // the token at each cached position
    TokenSink sink;
    FinishReason finish = FinishReason::None;
    bool started = false;
  };
  struct Pooled {
    std::unique_ptr<KvCache> cache;
    std::vector<std::int32_t> tokens;
  };
  // Copies the longest pooled prefix of req's tokens into seq's cache and drops those rows from req.
  void reuse_prefix(Sequence& seq, StepRequest& req);
  void retire(Sequence& seq, FinishReason reason);
  const Model& model_;
  Transformer transformer_;
  std::map<SequenceId, Sequence> sequences_;
  SequenceId next_id_ = 1;
  std::int64_t last_rows_ = 0, reused_ = 0;
  std::size_t pool_capacity_;
  std::vector<Pooled> pool_;   // most recently finished last
  std::vector<ForwardRow> rows_;
  std::vector<std::int32_t> logit_rows_;
  std::vector<float> logits_;
  std::vector<TokenLogprob> sink_logprobs_;
};

}  // namespace bitrun
