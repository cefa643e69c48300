// One request's output as it is generated: the scheduler's tokens turned into text deltas (whole UTF-8
// characters, stop strings never shown, via the core's TextStream), the logprobs of the tokens behind each delta,
// and how it ended. It enforces the request timeout and cancels the request when the client goes away or a stop
// string appears, so a sequence never keeps decoding for nobody. Used by both the plain and the SSE responses.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "bitrun/scheduler.hpp"
#include "bitrun/stop_strings.hpp"

namespace bitrun::http {

enum class Outcome {
  Running,
  Finished,       // end-of-generation token, stop string or max_tokens: finish_reason() says which
  TimedOut,       // server.request_timeout_s passed; the request was cancelled
  Disconnected,   // the client went away; the request was cancelled
  ShuttingDown,   // the server is stopping
  Failed,         // the engine failed; error() says why
};

struct Piece {
  std::string text;
  std::vector<TokenLogprob> logprobs;   // the tokens whose text this piece completes
};

class Generation {
 public:
  using Clock = std::chrono::steady_clock;
  // continuation: the text continues the prompt's (a completion), see StreamingDecoder.
  Generation(Scheduler::Handle handle, const Tokenizer& tokenizer, std::vector<std::string> stops, bool continuation,
             Clock::time_point deadline, std::function<bool()> client_alive);

  // Waits for the next piece of text. Returns true with a piece (empty when `idle` passed without news, so a
  // stream can send a keep-alive), false once the request has ended (outcome() says how).
  bool next(Piece& out, std::chrono::milliseconds idle);
  // Runs to the end, concatenating every piece (for non-streamed responses).
  Piece collect();

  Outcome outcome() const { return outcome_; }
  const char* finish_reason() const { return finish_reason_; }   // "stop" or "length" once Finished
  const std::string& error() const { return error_; }
  std::int64_t completion_tokens() const { return completion_tokens_; }
  // The engine's counts for this request so far (forwards, rows, tokens) and the seconds since it was submitted.
  const SequenceStats& stats() const { return stats_; }
  double seconds() const { return std::chrono::duration<double>(Clock::now() - started_).count(); }
  // Tell the generation that the client is gone (a failed write): cancels the request.
  void client_gone();

 private:
  void take(Scheduler::Update& update, Piece& out);
  void end(Outcome outcome, const char* reason = "");

  Scheduler::Handle handle_;
  TextStream text_;
  Clock::time_point deadline_;
  std::function<bool()> client_alive_;
  Clock::time_point last_check_;
  std::vector<TokenLogprob> held_logprobs_;   // tokens whose text is still held back
  Outcome outcome_ = Outcome::Running;
  const char* finish_reason_ = "";
  std::string error_;
  std::int64_t completion_tokens_ = 0;
  SequenceStats stats_;
  Clock::time_point started_ = Clock::now();
};

}  // namespace bitrun::http
