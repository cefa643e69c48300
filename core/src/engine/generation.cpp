#include "bitrun/engine/generation.hpp"

#include <algorithm>

#include "bitrun/config/config.hpp"
#include "bitrun/engine/decode_request.hpp"
#include "bitrun/base/error.hpp"
#include "bitrun/model/model.hpp"
#include "bitrun/tokenizer/tokenizer.hpp"

namespace bitrun {
namespace {
// How often a waiting request checks its client and deadline.
constexpr auto kPollInterval = std::chrono::milliseconds(100);

std::vector<std::int32_t> prompt_tokens(const Config& config, const Tokenizer& tok, const GenerationPrompt& p) {
  switch (p.kind) {
    case GenerationPrompt::Kind::Chat:
      return encode_chat(tok, select_chat_template(config.get_string("chat.template"), tok), p.messages,
                         /*add_generation_prompt=*/true);
    case GenerationPrompt::Kind::Text:
      return tok.encode(p.text, /*add_bos=*/true, /*parse_special=*/true);
    case GenerationPrompt::Kind::Tokens:
      for (std::size_t i = 0; i < p.tokens.size(); ++i)
        if (p.tokens[i] < 0 || p.tokens[i] >= tok.vocab_size())
          throw Error("prompt[" + std::to_string(i) + "] = " + std::to_string(p.tokens[i]) +
                      " is not a token id (the vocabulary has " + std::to_string(tok.vocab_size()) + ")");
      return p.tokens;
  }
  throw Error("unknown prompt kind");
}

}  // namespace

PreparedGeneration prepare_generation(const Config& config, const Model& model, const GenerationPrompt& prompt,
                                      std::int64_t max_tokens) {
  const Tokenizer& tok = model.tokenizer();
  // A text far too long for the context is refused before it is tokenized: no token covers more bytes than the
  // longest token text, so it is this many tokens at least.
  std::size_t text_bytes = prompt.kind == GenerationPrompt::Kind::Text ? prompt.text.size() : 0;
  if (prompt.kind == GenerationPrompt::Kind::Chat)
    for (const auto& m : prompt.messages) text_bytes += m.content.size();
  const std::int64_t context = request_context_size(config, model);
  if (const auto at_least = static_cast<std::int64_t>(text_bytes / tok.max_token_text_bytes()); at_least >= context)
    throw Error("the prompt is at least " + std::to_string(at_least) + " tokens long (" + std::to_string(text_bytes) +
                " bytes of text) but the context holds " + std::to_string(context));
  std::vector<std::int32_t> tokens = prompt_tokens(config, tok, prompt);
  if (tokens.empty()) throw Error("the prompt is empty and the model has no BOS token to start from");
  const auto size = static_cast<std::int64_t>(tokens.size());

  PreparedGeneration g;
  // A continued text keeps its first token's leading space; a chat answer starts anew.
  g.continuation = prompt.kind != GenerationPrompt::Kind::Chat && !tok.decode(tokens).empty();
  g.request = make_decode_request(config, model, std::move(tokens), max_tokens);
  if (size >= g.request.context_size)
    throw Error("the prompt has " + std::to_string(size) + " tokens but the context holds " +
                std::to_string(g.request.context_size) + " (at least one position must be left to generate)");
  g.stops = config.get_string_list("generation.stop");
  return g;
}

Generation::Generation(Scheduler::Handle handle, const Tokenizer& tokenizer, std::vector<std::string> stops,
                       bool continuation, GenerationWatch watch)
    : handle_(std::move(handle)), text_(tokenizer, std::move(stops), continuation), watch_(std::move(watch)),
      last_check_(Clock::now()) {}

double Generation::seconds_to_first_token() const {
  return tokens_.empty() ? 0.0 : std::chrono::duration<double>(first_token_ - started_).count();
}

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
  if (!u.tokens.empty() && tokens_.empty()) first_token_ = Clock::now();
  for (std::size_t i = 0; i < u.tokens.size(); ++i) {
    tokens_.push_back(u.tokens[i]);
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
    if (now >= watch_.deadline) {
      error_ = watch_.deadline_message;
      end(Outcome::TimedOut);
      break;
    }
    if (now - last_check_ >= kPollInterval) {
      last_check_ = now;
      if (watch_.client_alive && !watch_.client_alive()) {
        end(Outcome::Disconnected);
        break;
      }
    }
    Scheduler::Update update;
    if (handle_.wait(update, std::min({now + kPollInterval, watch_.deadline, idle_until}))) {
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

}  // namespace bitrun
