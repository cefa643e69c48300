#include "sse.hpp"

#include "api_error.hpp"

namespace bitrun::http {

std::string sse_event(const Json& data) {
  std::string out = "data: ";
  data.dump_to(out);
  out += "\n\n";
  return out;
}

int outcome_status(Outcome outcome) {
  switch (outcome) {
    case Outcome::TimedOut:
    case Outcome::ShuttingDown: return 503;
    default: return 500;
  }
}

bool stream_events(Generation& gen, const ResponseHeader& h, const Tokenizer& tok, const StreamSettings& s,
                   const StreamWriter& write) {
  const bool lp = s.logprobs >= 0;
  auto send = [&](const std::string& bytes) {
    if (write(bytes)) return true;
    gen.client_gone();
    return false;
  };
  if (h.endpoint == Endpoint::Chat) {
    const std::string role = "assistant", empty;
    if (!send(sse_event(chunk_json(h, &role, &empty, nullptr, Json(), s.include_usage)))) return false;
  }
  std::size_t offset = 0;   // completions' text_offset runs across chunks
  Piece piece;
  while (gen.next(piece, s.keep_alive)) {
    if (piece.text.empty()) {
      if (!send(": keep-alive\n\n")) return false;
      continue;
    }
    Json logprobs = lp ? logprobs_json(h.endpoint, tok, piece.logprobs, s.logprobs, offset) : Json();
    offset += piece.text.size();
    Json chunk = chunk_json(h, nullptr, &piece.text, nullptr, std::move(logprobs), s.include_usage);
    chunk["bitrun"] = decode_stats_json(gen.stats(), gen.seconds());
    if (!send(sse_event(chunk))) return false;
  }
  if (gen.outcome() == Outcome::Disconnected) return false;
  if (gen.outcome() != Outcome::Finished) {
    const int status = outcome_status(gen.outcome());
    return send("data: " + error_body(status, gen.error()) + "\n\n");
  }
  Json last = chunk_json(h, nullptr, nullptr, gen.finish_reason(), Json(), s.include_usage);
  last["bitrun"] = decode_stats_json(gen.stats(), gen.seconds());
  if (!send(sse_event(last))) return false;
  if (s.include_usage &&
      !send(sse_event(usage_chunk_json(h, usage_json(s.prompt_tokens, gen.completion_tokens())))))
    return false;
  return send("data: [DONE]\n\n");
}

}  // namespace bitrun::http
