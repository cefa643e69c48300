// The JSON OpenAI clients expect: whole chat / text completions, their streamed chunks, usage and logprobs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bitrun/plugin/decoder.hpp"
#include "bitrun/engine/engine.hpp"
#include "bitrun/base/json.hpp"
#include "request_parser.hpp"

namespace bitrun {
class Tokenizer;
}

namespace bitrun::http {

// What every response and chunk of one request repeats.
struct ResponseHeader {
  Endpoint endpoint = Endpoint::Chat;
  std::string id;          // chatcmpl-... / cmpl-...
  std::int64_t created = 0;
  std::string model;
};

ResponseHeader make_header(Endpoint endpoint, const std::string& model);

Json usage_json(std::int64_t prompt_tokens, std::int64_t completion_tokens);

// bitrun's decoding statistics of a request so far, added as a "bitrun" field to responses and stream chunks
// (OpenAI clients ignore it; the chat page shows it): forwards, rows and tokens the engine ran for it, tokens and
// rows per forward (what block diffusion changes), and seconds since it was submitted.
Json decode_stats_json(const SequenceStats& stats, double seconds);

// Logprobs in the endpoint's shape: chat {"content":[{token, logprob, bytes, top_logprobs}]}, completions
// {tokens, token_logprobs, top_logprobs, text_offset}. `text_offset` counts from `offset_base`.
Json logprobs_json(Endpoint endpoint, const Tokenizer& tokenizer, const std::vector<TokenLogprob>& logprobs,
                   std::int32_t top, std::size_t offset_base = 0);

// The non-streamed response. `logprobs` is null when the request did not ask for them.
Json completion_json(const ResponseHeader& h, const std::string& text, const char* finish_reason, Json logprobs,
                     const Json& usage);

// One streamed chunk with a single choice. Chat: a delta with `role` (first chunk) and/or `content`; completions:
// `text`. finish_reason null until the last chunk. `with_usage_field` adds "usage": null (as OpenAI does when the
// client asked for a usage chunk).
Json chunk_json(const ResponseHeader& h, const std::string* role, const std::string* text, const char* finish_reason,
                Json logprobs, bool with_usage_field);

// The last chunk of a stream that asked for usage: no choices.
Json usage_chunk_json(const ResponseHeader& h, const Json& usage);

}  // namespace bitrun::http
