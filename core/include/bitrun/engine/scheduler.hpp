// Scheduler: puts requests from many threads onto one Engine. A worker thread owns the engine and loops step();
// other threads (the HTTP server's) submit started DecodeSessions and read each request's tokens from its own
// queue. At most max_parallel sequences decode at once (sharing every forward: continuous batching); up to
// max_queue more wait for a slot; beyond that submit() refuses (the server answers 429) instead of letting a queue
// grow without bound. Cancelling a handle (client gone, timeout, stop string) frees its sequence at the next step
// boundary. The counters behind the server's /metrics are kept here.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bitrun/plugin/decoder.hpp"
#include "bitrun/engine/engine.hpp"
#include "bitrun/base/error.hpp"
#include "bitrun/base/histogram.hpp"

namespace bitrun {

class Model;

// submit() when max_parallel sequences run and max_queue wait already.
class SchedulerFull : public Error {
 public:
  using Error::Error;
};

// submit() after shutdown() began.
class SchedulerStopped : public Error {
 public:
  using Error::Error;
};

struct SchedulerOptions {
  std::size_t max_parallel = 8;   // sequences decoded together
  std::size_t max_queue = 64;     // admitted requests waiting for a slot
  std::size_t prefix_pool = 4;    // the engine's prompt-prefix pool
  KvCacheType kv_cache = KvCacheType::F16;   // the sequences' caches (kv_cache.type)
  // No worker thread: Handle::wait() runs the engine's steps in the waiting thread. For a single client that
  // reads its own request (the CLI): no thread hop and wake-up per token. One thread submits, waits and shuts
  // down; max_parallel must be 1.
  bool in_caller_thread = false;

  // One request at a time, decoded in the thread that reads it (`bitrun generate`, `bitrun chat`).
  static SchedulerOptions single_client_in_caller_thread() {
    SchedulerOptions o;
    o.max_parallel = 1;
    o.max_queue = 0;
    o.in_caller_thread = true;
    return o;
  }
};

// A snapshot of the counters (totals since the scheduler started).
struct SchedulerStats {
  std::size_t running = 0, waiting = 0;
  std::uint64_t submitted = 0, rejected = 0;              // rejected: refused because the queue was full
  std::uint64_t finished = 0, cancelled = 0, failed = 0;  // how admitted requests ended
  std::uint64_t prompt_tokens = 0, generated_tokens = 0, reused_prompt_tokens = 0;
  std::uint64_t steps = 0;                                 // engine steps (merged forwards)
  double busy_seconds = 0.0;                               // time spent inside steps
  double recent_tokens_per_second = 0.0;                   // generated tokens over the last 10 s
  // Seconds from submit() to the first generated token, spent waiting for a slot, and to the request's end.
  Histogram time_to_first_token{latency_buckets_seconds()};
  Histogram queue_wait{latency_buckets_seconds()};
  Histogram request_duration{latency_buckets_seconds()};
};

class Scheduler {
 public:
  // What a request has received since the last read: tokens (with logprobs when it asked for them) and, once it
  // ended, why. An Error finish carries the message. `stats`: the engine's counts for the request so far
  // (forwards, rows, tokens), as of its latest tokens or its end.
  struct Update {
    std::vector<std::int32_t> tokens;
    std::vector<TokenLogprob> logprobs;
    FinishReason finish = FinishReason::None;
    std::string error;
    SequenceStats stats;
  };

  struct Channel;   // one request's queue, shared between the worker and its handle

  // The submitting thread's end of a request. Move-only; destroying an unfinished handle cancels the request,
  // so a handler that returns early (exception, disconnect) never leaves a sequence decoding for nobody.
  class Handle {
   public:
    Handle() = default;
    explicit Handle(std::shared_ptr<Channel> channel) : channel_(std::move(channel)) {}
    Handle(Handle&&) noexcept = default;
    Handle& operator=(Handle&& other) noexcept;
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle();

    // Waits until something arrived or `deadline` passed; moves everything that arrived into `out` (appending
    // tokens, setting finish). Returns false on timeout with nothing new.
    bool wait(Update& out, std::chrono::steady_clock::time_point deadline);
    // Asks for the request to end; a Cancelled finish follows unless it already finished. Thread-safe, idempotent.
    void cancel();
    // Ends the request because the caller has what it asked for (a stop string matched in the text): like cancel(),
    // but the finish is Stop and the request counts as finished, not cancelled. Thread-safe, idempotent.
    void stop();
    bool finished() const;
    explicit operator bool() const { return channel_ != nullptr; }

   private:
    void end(FinishReason reason);
    std::shared_ptr<Channel> channel_;
  };

  Scheduler(const Model& model, SchedulerOptions options);
  // shutdown()
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues `session` (already started by its decoder, so bad requests fail in the caller's thread) for a sequence
  // of `context_size` positions; `prompt_tokens` is counted for the metrics. Throws SchedulerFull or
  // SchedulerStopped.
  Handle submit(std::unique_ptr<DecodeSession> session, std::int64_t context_size, std::size_t prompt_tokens);

  // Graceful stop, first half: refuses new requests (SchedulerStopped) and waits until every running and waiting
  // one has ended or `deadline` passed. True if none is left. shutdown() then cancels whatever still runs.
  bool drain(std::chrono::steady_clock::time_point deadline);

  // Cancels every running and waiting request (each gets a Cancelled finish), refuses new ones and stops the
  // worker. Idempotent; returns once the worker has exited.
  void shutdown();

  SchedulerStats stats() const;
  const SchedulerOptions& options() const { return options_; }

  struct State;   // shared with the channels so a late cancel() never touches a destroyed scheduler

 private:
  SchedulerOptions options_;
  std::shared_ptr<State> state_;
};

}  // namespace bitrun
