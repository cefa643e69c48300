// Server-sent events the way OpenAI clients parse them: `data: <json>\n\n` per chunk, the chat role chunk first,
// content deltas, a chunk with finish_reason, the usage chunk when asked for, then `data: [DONE]`. An error after
// the stream started goes out as `data: {"error":...}` and the stream ends. Comment lines keep idle connections
// open with strict proxies and clients.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "bitrun/engine/generation.hpp"
#include "bitrun/base/json.hpp"
#include "responses.hpp"

namespace bitrun::http {

struct StreamSettings {
  bool include_usage = false;
  std::int32_t logprobs = -1;        // -1: none
  std::int64_t prompt_tokens = 0;
  std::chrono::milliseconds keep_alive{5000};
};

// Writes bytes to the client; false once it is gone.
using StreamWriter = std::function<bool(const std::string&)>;

std::string sse_event(const Json& data);

// The HTTP status an outcome other than Finished maps to (timeout and shutdown 503, failure 500).
int outcome_status(Outcome outcome);

// Runs `gen` to its end, writing the events. Returns false when a write failed (the generation is then
// cancelled).
bool stream_events(Generation& gen, const ResponseHeader& header, const Tokenizer& tokenizer,
                   const StreamSettings& settings, const StreamWriter& write);

}  // namespace bitrun::http
