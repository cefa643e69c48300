#include "bitrun/engine/scheduler.hpp"

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "bitrun/engine/engine.hpp"
#include "bitrun/base/log.hpp"

namespace bitrun {

using Clock = std::chrono::steady_clock;

// Lock order everywhere: State::mu before Channel::mu; the worker runs engine steps holding neither.
struct Scheduler::State {
  std::mutex mu;
  std::condition_variable cv;
  SchedulerOptions options;
  std::unique_ptr<Engine> engine;   // touched by the worker only (and under mu, between steps)
  std::deque<std::shared_ptr<Channel>> waiting;
  std::map<Engine::SequenceId, std::shared_ptr<Channel>> running;
  std::vector<std::shared_ptr<Channel>> cancels;   // running requests whose handle asked to cancel
  bool stopping = false;
  bool draining = false;   // drain(): no new requests
  bool trim_pending = false;   // a request ended since the heap was last trimmed
  std::thread worker;

  SchedulerStats totals;                                  // running/waiting/rate are filled in by stats()
  std::atomic<std::uint64_t> generated{0};                // counted by the sinks, during steps
  std::deque<std::pair<Clock::time_point, std::uint64_t>> recent;   // tokens generated per step, last 10 s
  Clock::time_point started = Clock::now();
  // The latency histograms of totals: the sinks record first tokens during steps, without mu.
  std::mutex latency_mu;
};

struct Scheduler::Channel {
  enum class Where { Waiting, Running, Done };
  // Guarded by State::mu.
  std::shared_ptr<State> state;
  Where where = Where::Waiting;
  std::unique_ptr<DecodeSession> session;   // until admitted
  std::int64_t context_size = 0;
  Engine::SequenceId id = 0;
  FinishReason ended_by_caller = FinishReason::None;   // Cancelled or Stop once the caller's cancel() or stop() asked
  Clock::time_point submitted = Clock::now();
  bool first_token_seen = false;   // touched by the worker's sink only
  // Guarded by mu.
  std::mutex mu;
  std::condition_variable cv;
  Update pending;
  bool finished = false;         // the finish has arrived
  bool finish_taken = false;     // ... and was handed to the reader
};

namespace {

constexpr auto kRateWindow = std::chrono::seconds(10);

// Hands the request its finish (caller holds State::mu) and counts it.
void finish_channel(Scheduler::State& st, Scheduler::Channel& ch, FinishReason reason, const std::string& error) {
  st.trim_pending = true;
  {
    std::lock_guard latency(st.latency_mu);
    st.totals.request_duration.observe(std::chrono::duration<double>(Clock::now() - ch.submitted).count());
  }
  ch.where = Scheduler::Channel::Where::Done;
  ch.session.reset();
  switch (reason) {
    case FinishReason::Cancelled: ++st.totals.cancelled; break;
    case FinishReason::Error: ++st.totals.failed; break;
    default: ++st.totals.finished; break;
  }
  std::lock_guard lock(ch.mu);
  ch.pending.finish = reason;
  ch.pending.error = error;
  ch.finished = true;
  ch.cv.notify_all();
}

// Running requests whose sequence ended (decoder finished, cancelled, or failed) leave the engine.
void sweep(Scheduler::State& st) {
  for (auto it = st.running.begin(); it != st.running.end();) {
    const FinishReason reason = st.engine->finish_reason(it->first);
    if (reason == FinishReason::None) {
      ++it;
      continue;
    }
    // The engine's Cancelled comes from a caller's cancel() or stop(), which said how it ends.
    Scheduler::Channel& ch = *it->second;
    const bool caller_ended = reason == FinishReason::Cancelled && ch.ended_by_caller != FinishReason::None;
    const std::string& error = st.engine->error(it->first);
    {
      std::lock_guard lock(ch.mu);
      ch.pending.stats = st.engine->stats(it->first);
    }
    finish_channel(st, ch, caller_ended ? ch.ended_by_caller : reason, error.empty() ? error : "generation failed: " + error);
    st.engine->forget(it->first);
    it = st.running.erase(it);
  }
}

void admit(Scheduler::State& st) {
  while (st.running.size() < st.options.max_parallel && !st.waiting.empty()) {
    std::shared_ptr<Scheduler::Channel> ch = std::move(st.waiting.front());
    st.waiting.pop_front();
    Scheduler::Channel* raw = ch.get();
    try {
      // The sink runs on the worker during a step: it only touches the channel.
      ch->id = st.engine->add(std::move(ch->session), ch->context_size,
                              [raw, &st](Engine::SequenceId id, const std::vector<std::int32_t>& tokens) {
                                const auto& lp = st.engine->sink_logprobs();
                                st.generated += tokens.size();
                                if (!raw->first_token_seen && !tokens.empty()) {
                                  raw->first_token_seen = true;
                                  const double s = std::chrono::duration<double>(Clock::now() - raw->submitted).count();
                                  std::lock_guard latency(st.latency_mu);
                                  st.totals.time_to_first_token.observe(s);
                                }
                                const SequenceStats stats = st.engine->stats(id);
                                std::lock_guard lock(raw->mu);
                                raw->pending.stats = stats;
                                raw->pending.tokens.insert(raw->pending.tokens.end(), tokens.begin(), tokens.end());
                                raw->pending.logprobs.insert(raw->pending.logprobs.end(), lp.begin(), lp.end());
                                raw->cv.notify_all();
                              });
    } catch (const std::exception& e) {
      finish_channel(st, *ch, FinishReason::Error, e.what());
      continue;
    }
    ch->where = Scheduler::Channel::Where::Running;
    {
      std::lock_guard latency(st.latency_mu);
      st.totals.queue_wait.observe(std::chrono::duration<double>(Clock::now() - ch->submitted).count());
    }
    st.running.emplace(ch->id, std::move(ch));
  }
}

// Applies the cancel()s and stop()s callers asked for since the last round, then lets every sequence that ended
// leave the engine (caller holds State::mu).
void end_what_callers_ended(Scheduler::State& st) {
  for (const auto& ch : st.cancels)
    if (ch->where == Scheduler::Channel::Where::Running) st.engine->cancel(ch->id);
  st.cancels.clear();
  sweep(st);
}

enum class Tick { Progress, Idle, Stopping };

// One round of the worker, called with st.mu held through `lock` (released during the engine step): apply the
// cancels, drop what ended, admit what fits, and run one step if anything runs.
Tick tick(Scheduler::State& st, std::unique_lock<std::mutex>& lock) {
  end_what_callers_ended(st);
  if (st.stopping) return Tick::Stopping;
  admit(st);
  if (st.running.empty()) {
    // Idle after requests ended: hand the freed memory of every malloc arena (the HTTP threads' request bodies
    // and token lists, the sequences' buffers) back to the system, so a few large requests do not leave the
    // process hundreds of MB larger for good. A single client in its own thread has no arenas to give back, and
    // would wait for the trim before it hears that its request ended.
    if (!st.trim_pending || st.options.in_caller_thread) return Tick::Idle;
    st.trim_pending = false;
    lock.unlock();
    malloc_trim(0);
    lock.lock();
    return Tick::Progress;
  }

  const std::uint64_t before = st.generated;
  lock.unlock();
  const auto t0 = Clock::now();
  std::string error;
  try {
    st.engine->step();
  } catch (const std::exception& e) {
    error = e.what();
  }
  const auto t1 = Clock::now();
  lock.lock();
  ++st.totals.steps;
  st.totals.busy_seconds += std::chrono::duration<double>(t1 - t0).count();
  st.totals.reused_prompt_tokens = static_cast<std::uint64_t>(st.engine->reused_positions());
  const std::uint64_t made = st.generated - before;
  st.totals.generated_tokens += made;
  st.recent.emplace_back(t1, made);
  while (!st.recent.empty() && t1 - st.recent.front().first > kRateWindow) st.recent.pop_front();

  if (!error.empty()) {
    // A failed forward leaves every running sequence in an unknown state: end them all with the message.
    logger("scheduler")->error("engine step failed: {}", error);
    for (auto& [id, ch] : st.running) {
      st.engine->cancel(id);
      st.engine->forget(id);
      finish_channel(st, *ch, FinishReason::Error, "generation failed: " + error);
    }
    st.running.clear();
  }
  return Tick::Progress;
}

// Shutting down, with st.mu held: nothing more runs; everyone still here is told.
void end_all(Scheduler::State& st) {
  for (auto& [id, ch] : st.running) {
    st.engine->cancel(id);
    st.engine->forget(id);
    finish_channel(st, *ch, FinishReason::Cancelled, "the server is shutting down");
  }
  st.running.clear();
  for (auto& ch : st.waiting) finish_channel(st, *ch, FinishReason::Cancelled, "the server is shutting down");
  st.waiting.clear();
  st.cancels.clear();   // channels own the state: a channel left here would keep both alive
  st.engine.reset();   // while the model is certainly alive
}

void run_worker(const std::shared_ptr<Scheduler::State>& shared) {
  Scheduler::State& st = *shared;
  std::unique_lock lock(st.mu);
  for (Tick t; (t = tick(st, lock)) != Tick::Stopping;)
    if (t == Tick::Idle) st.cv.wait(lock);
  end_all(st);
}

}  // namespace

Scheduler::Handle& Scheduler::Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    if (channel_ && !finished()) cancel();
    channel_ = std::move(other.channel_);
  }
  return *this;
}

Scheduler::Handle::~Handle() {
  if (channel_ && !finished()) cancel();
}

bool Scheduler::Handle::wait(Update& out, Clock::time_point deadline) {
  if (!channel_) return false;
  Channel& ch = *channel_;
  auto ready = [&] { return !ch.pending.tokens.empty() || (ch.finished && !ch.finish_taken); };
  if (ch.state->options.in_caller_thread) {
    // No worker: this thread runs the steps until its request has news (or nothing can run any more).
    for (;;) {
      {
        std::lock_guard lock(ch.mu);
        if (ready()) break;
      }
      if (Clock::now() >= deadline) return false;
      std::unique_lock state_lock(ch.state->mu);
      if (tick(*ch.state, state_lock) != Tick::Progress) break;
    }
  }
  std::unique_lock lock(ch.mu);
  if (!ch.cv.wait_until(lock, deadline, ready)) return false;
  out.tokens.insert(out.tokens.end(), ch.pending.tokens.begin(), ch.pending.tokens.end());
  out.logprobs.insert(out.logprobs.end(), std::make_move_iterator(ch.pending.logprobs.begin()),
                      std::make_move_iterator(ch.pending.logprobs.end()));
  out.stats = ch.pending.stats;
  ch.pending.tokens.clear();
  ch.pending.logprobs.clear();
  if (ch.finished && !ch.finish_taken) {
    out.finish = ch.pending.finish;
    out.error = ch.pending.error;
    ch.finish_taken = true;
  }
  return true;
}

void Scheduler::Handle::cancel() { end(FinishReason::Cancelled); }

void Scheduler::Handle::stop() { end(FinishReason::Stop); }

void Scheduler::Handle::end(FinishReason reason) {
  if (!channel_) return;
  State& st = *channel_->state;
  std::lock_guard lock(st.mu);
  switch (channel_->where) {
    case Channel::Where::Done: return;
    case Channel::Where::Waiting:
      for (auto it = st.waiting.begin(); it != st.waiting.end(); ++it)
        if (*it == channel_) {
          st.waiting.erase(it);
          break;
        }
      finish_channel(st, *channel_, reason, {});
      return;
    case Channel::Where::Running:
      // The first request to end it decides how: the handle's destructor cancels after a stop() is not a cancel.
      if (channel_->ended_by_caller != FinishReason::None) return;
      channel_->ended_by_caller = reason;
      st.cancels.push_back(channel_);
      st.cv.notify_all();
      return;
  }
}

bool Scheduler::Handle::finished() const {
  if (!channel_) return true;
  std::lock_guard lock(channel_->mu);
  return channel_->finished;
}

Scheduler::Scheduler(const Model& model, SchedulerOptions options) : options_(options) {
  if (options_.max_parallel < 1) throw ConfigError("the scheduler needs max_parallel >= 1");
  // The caller's thread runs the steps while it waits on one request; a second request, or a second thread,
  // would need the worker's coordination.
  if (options_.in_caller_thread && options_.max_parallel != 1)
    throw ConfigError("a scheduler that runs in the caller's thread decodes one request at a time (max_parallel 1)");
  state_ = std::make_shared<State>();
  state_->options = options_;
  state_->engine = std::make_unique<Engine>(model, options_.prefix_pool, options_.kv_cache);
  if (!options_.in_caller_thread) state_->worker = std::thread(run_worker, state_);
}

Scheduler::~Scheduler() { shutdown(); }

Scheduler::Handle Scheduler::submit(std::unique_ptr<DecodeSession> session, std::int64_t context_size,
                                    std::size_t prompt_tokens) {
  if (!session) throw Error("scheduler: no decode session");
  std::lock_guard lock(state_->mu);
  State& st = *state_;
  if (st.stopping || st.draining) throw SchedulerStopped("the server is shutting down");
  // Requests their caller already ended (a stop string) leave at the next step boundary: they hold no place.
  const auto live = static_cast<std::size_t>(std::count_if(st.running.begin(), st.running.end(), [](const auto& r) {
    return r.second->ended_by_caller == FinishReason::None;
  }));
  if (live + st.waiting.size() >= options_.max_parallel + options_.max_queue) {
    ++st.totals.rejected;
    throw SchedulerFull("the server is busy: " + std::to_string(live) + " requests are running and " +
                        std::to_string(st.waiting.size()) + " waiting (max_parallel = " +
                        std::to_string(options_.max_parallel) + ", max_queue = " +
                        std::to_string(options_.max_queue) + "); retry later");
  }
  auto ch = std::make_shared<Channel>();
  ch->state = state_;
  ch->session = std::move(session);
  ch->context_size = context_size;
  ++st.totals.submitted;
  st.totals.prompt_tokens += prompt_tokens;
  st.waiting.push_back(ch);
  st.cv.notify_all();
  return Handle(std::move(ch));
}

bool Scheduler::drain(Clock::time_point deadline) {
  {
    std::lock_guard lock(state_->mu);
    state_->draining = true;
  }
  for (;;) {
    {
      std::lock_guard lock(state_->mu);
      if (state_->running.empty() && state_->waiting.empty()) return true;
    }
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void Scheduler::shutdown() {
  {
    std::lock_guard lock(state_->mu);
    if (options_.in_caller_thread && !state_->stopping && state_->engine) {
      // What the caller ended (a stop string) ends as it asked, as the worker's next round would have done.
      end_what_callers_ended(*state_);
      end_all(*state_);
    }
    state_->stopping = true;
    state_->cv.notify_all();
  }
  if (state_->worker.joinable()) state_->worker.join();
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard lock(state_->mu);
  const State& st = *state_;
  SchedulerStats s = [&] {
    std::lock_guard latency(state_->latency_mu);
    return st.totals;
  }();
  s.running = st.running.size();
  s.waiting = st.waiting.size();
  const auto now = Clock::now();
  std::uint64_t tokens = 0;
  for (const auto& [t, n] : st.recent)
    if (now - t <= kRateWindow) tokens += n;
  const double window = std::min(std::chrono::duration<double>(kRateWindow).count(),
                                 std::chrono::duration<double>(now - st.started).count());
  s.recent_tokens_per_second = window > 0 ? static_cast<double>(tokens) / window : 0.0;
  return s;
}

}  // namespace bitrun
