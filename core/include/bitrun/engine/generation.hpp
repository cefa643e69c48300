// The generation pipeline every frontend shares (`bitrun generate`, `bitrun chat`, the HTTP server):
//   prepare_generation()  a prompt (text to continue, a conversation to answer, or token ids) -> tokens -> the
//                         DecodeRequest with the configuration's context, sampling and stop strings, refusing
//                         what cannot fit with an Error that names the sizes;
//   Scheduler::submit()   the decoder's session, decoded with every other request (continuous batching);
//   Generation            the request's tokens -> text deltas (whole UTF-8 characters, stop strings never shown),
//                         the logprobs behind each delta, how it ended and the engine's counts. It cancels the
//                         request at a stop string, a deadline or when its client goes away, so a sequence never
//                         keeps decoding for nobody.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "bitrun/tokenizer/chat_template.hpp"
#include "bitrun/plugin/decoder.hpp"
#include "bitrun/engine/scheduler.hpp"
#include "bitrun/tokenizer/stop_strings.hpp"

namespace bitrun {

class Config;
class Model;

// What a generation starts from.
struct GenerationPrompt {
  enum class Kind { Text, Chat, Tokens };
  Kind kind = Kind::Text;
  std::string text;                    // Text: tokenized with BOS, special tokens parsed
  std::vector<ChatMessage> messages;   // Chat: the chat template (chat.template) with the generation prompt
  std::vector<std::int32_t> tokens;    // Tokens: used as given, each checked against the vocabulary
};

struct PreparedGeneration {
  DecodeRequest request;               // make_decode_request(): context, sampling.*, end tokens, model facts
  bool continuation = false;           // the output continues the prompt's text (its first token keeps a space)
  std::vector<std::string> stops;      // generation.stop
};

// Error naming the problem when the prompt is empty with no BOS to start from, holds a token id outside the
// vocabulary, or does not leave a position to generate in the context (a text far too long is refused before it
// is tokenized: no token covers more bytes than the longest token's text).
PreparedGeneration prepare_generation(const Config& config, const Model& model, const GenerationPrompt& prompt,
                                      std::int64_t max_tokens);

enum class Outcome {
  Running,
  Finished,       // end-of-generation token, stop string or max_tokens: finish_reason() says which
  TimedOut,       // the deadline passed; the request was cancelled
  Disconnected,   // the client went away; the request was cancelled
  ShuttingDown,   // the scheduler is stopping
  Failed,         // the engine failed; error() says why
};

struct Piece {
  std::string text;
  std::vector<TokenLogprob> logprobs;   // the tokens whose text this piece completes
};

// How a Generation watches its request besides the tokens: a deadline (with the message a timeout gets) and a
// check that someone still waits for it (a connection, a terminal not interrupted), polled every 100 ms.
struct GenerationWatch {
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::string deadline_message = "the request did not finish in time and was cancelled";
  std::function<bool()> client_alive;   // empty = always
};

class Generation {
 public:
  using Clock = std::chrono::steady_clock;
  // continuation: the text continues the prompt's (a completion), see TextStream.
  Generation(Scheduler::Handle handle, const Tokenizer& tokenizer, std::vector<std::string> stops, bool continuation,
             GenerationWatch watch = {});

  // Waits for the next piece of text. Returns true with a piece (empty when `idle` passed without news, so a
  // stream can send a keep-alive), false once the request has ended (outcome() says how).
  bool next(Piece& out, std::chrono::milliseconds idle);
  // Runs to the end, concatenating every piece (for non-streamed responses).
  Piece collect();

  Outcome outcome() const { return outcome_; }
  const char* finish_reason() const { return finish_reason_; }   // "stop" or "length" once Finished
  const std::string& error() const { return error_; }
  std::int64_t completion_tokens() const { return static_cast<std::int64_t>(tokens_.size()); }
  // The tokens generated, up to a stop string (those decoded after it are dropped).
  const std::vector<std::int32_t>& tokens() const { return tokens_; }
  // The engine's counts for this request so far (forwards, rows, tokens), the seconds since it was submitted, and
  // from then to its first token (0 before it).
  const SequenceStats& stats() const { return stats_; }
  double seconds() const { return std::chrono::duration<double>(Clock::now() - started_).count(); }
  double seconds_to_first_token() const;
  // Tell the generation that the client is gone (a failed write): cancels the request.
  void client_gone();

 private:
  void take(Scheduler::Update& update, Piece& out);
  void end(Outcome outcome, const char* reason = "");

  Scheduler::Handle handle_;
  TextStream text_;
  GenerationWatch watch_;
  Clock::time_point last_check_;
  std::vector<TokenLogprob> held_logprobs_;   // tokens whose text is still held back
  Outcome outcome_ = Outcome::Running;
  const char* finish_reason_ = "";
  std::string error_;
  std::vector<std::int32_t> tokens_;
  SequenceStats stats_;
  Clock::time_point started_ = Clock::now();
  Clock::time_point first_token_{};
};

}  // namespace bitrun
