#include "generation.hpp"

#include <algorithm>

namespace bitrun::http {
namespace {
// How often a waiting request checks its client and deadline.
constexpr auto kPollInterval = std::chrono::milliseconds(100);
}  // namespace

Generation::Generation(Scheduler::Handle handle, const Tokenizer& tokenizer, std::vector<std::string> stops,
                       bool continuation, Clock::time_point deadline, std::function<bool()> client_alive)
    : handle_(std::move(handle)), text_(tokenizer, std::move(stops), continuation), deadline_(deadline),
      client_alive_(std::move(client_alive)), last_check_(Clock::now()) {}

void Generation::end(Outcome outcome, const char* reason) {
  outcome_ = outcome;
  finish_reason_ = reason;
  // No-ops when the scheduler already finished it. A request we end because it is complete (a stop string)
  // counts as finished in the metrics; anything else as cancelled.
  if (outcome == Outcome::Finished) handle_.stop();
  else handle_.cancel();
}

void Generation::client_gone() {
  if (outcome_ == Outcome::Running) end(Outcome::Disconnected);
}

void Generation::take(Scheduler::Update& u, Piece& out) {
  if (u.stats.forwards > 0) stats_ = u.stats;
  const bool with_logprobs = u.logprobs.size() == u.tokens.size();
  for (std::size_t i = 0; i < u.tokens.size(); ++i) {
    ++completion_tokens_;
    out.text += text_.push(u.tokens[i]);
    if (with_logprobs) held_logprobs_.push_back(std::move(u.logprobs[i]));
    if (text_.stopped()) {
      // The stop string ends the request here; tokens decoded after it are dropped.
      end(Outcome::Finished, "stop");
      break;
    }
  }
  if (outcome_ == Outcome::Running) {
    switch (u.finish) {
      case FinishReason::None: break;
      case FinishReason::Stop: end(Outcome::Finished, "stop"); break;
      case FinishReason::Length: end(Outcome::Finished, "length"); break;
      case FinishReason::Cancelled:
        error_ = u.error.empty() ? "the request was cancelled" : u.error;
        end(Outcome::ShuttingDown);
        break;
      case FinishReason::Error:
        error_ = u.error.empty() ? "generation failed" : u.error;
        end(Outcome::Failed);
        break;
    }
    if (outcome_ == Outcome::Finished) out.text += text_.finish();
  }
  // Logprobs travel with the text they produced; those of text a stop string swallowed are dropped.
  if (!out.text.empty()) {
    std::move(held_logprobs_.begin(), held_logprobs_.end(), std::back_inserter(out.logprobs));
    held_logprobs_.clear();
  }
}

bool Generation::next(Piece& out, std::chrono::milliseconds idle) {
  out = Piece{};
  const auto idle_until = Clock::now() + idle;
  while (outcome_ == Outcome::Running) {
    const auto now = Clock::now();
    if (now >= deadline_) {
      error_ = "the request did not finish within server.request_timeout_s and was cancelled";
      end(Outcome::TimedOut);
      break;
    }
    if (now - last_check_ >= kPollInterval) {
      last_check_ = now;
      if (client_alive_ && !client_alive_()) {
        end(Outcome::Disconnected);
        break;
      }
    }
    Scheduler::Update update;
    if (handle_.wait(update, std::min({now + kPollInterval, deadline_, idle_until}))) {
      take(update, out);
      if (!out.text.empty()) return true;
      if (outcome_ != Outcome::Running) return false;
    } else if (Clock::now() >= idle_until) {
      return true;   // nothing new: the caller may send a keep-alive
    }
  }
  return false;
}

Piece Generation::collect() {
  Piece all, piece;
  while (next(piece, std::chrono::hours(1))) {
    all.text += piece.text;
    std::move(piece.logprobs.begin(), piece.logprobs.end(), std::back_inserter(all.logprobs));
  }
  return all;
}

}  // namespace bitrun::http
