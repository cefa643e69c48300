// Request bodies -> validated requests. Each field is checked for type and range, and every 400 names the field;
// fields this server does not implement are refused by name instead of being silently ignored. A null value
// counts as absent (clients serialise unset options as null).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bitrun/tokenizer/chat_template.hpp"
#include "bitrun/plugin/decoder.hpp"
#include "bitrun/base/json.hpp"

namespace bitrun::http {

enum class Endpoint { Chat, Completion };

struct GenerationLimits {
  std::int64_t max_tokens_cap = 4096;      // server.max_tokens_cap
  std::int64_t default_max_tokens = 256;   // generation.max_tokens (capped)
};

// One /v1/chat/completions or /v1/completions request.
struct GenerationRequest {
  Endpoint endpoint = Endpoint::Chat;
  std::optional<std::string> model;
  std::vector<ChatMessage> messages;           // chat
  std::string prompt_text;                     // completion, when the prompt is text
  std::vector<std::int32_t> prompt_tokens;     // completion, when the prompt is token ids (not yet range-checked)
  bool prompt_is_tokens = false;
  std::int64_t max_tokens = 0;                 // resolved: the request's, else the default
  // Sampling overrides of the config's sampling.* defaults.
  std::optional<float> temperature, top_p, min_p, repeat_penalty, presence_penalty, frequency_penalty;
  std::optional<std::int32_t> top_k, penalty_last_n;
  std::optional<std::uint64_t> seed;
  std::optional<std::vector<std::string>> stop;   // replaces generation.stop when given
  bool stream = false;
  bool include_usage = false;                  // stream_options.include_usage
  std::int32_t logprobs = -1;                  // -1: none; else how many alternatives per token (0..20)
  std::string decoder;                         // "" = the server's default (decoder.type)
  std::map<std::string, std::string> decoder_options;
};

// Throws ApiError(400) naming the first offending field.
GenerationRequest parse_generation_request(const Json& body, Endpoint endpoint, const GenerationLimits& limits);

// The request's sampling overrides applied over `params`.
void apply_sampling(const GenerationRequest& request, SamplingParams& params);

struct TokenizeRequest {
  std::string content;
  bool add_special = false;    // prepend BOS when the model uses one
  bool parse_special = true;   // text spelling a control token becomes that token
  bool with_pieces = false;    // each token with the text it stands for
};
TokenizeRequest parse_tokenize_request(const Json& body);

// Token ids as given (range-checked by the handler, which knows the vocabulary).
std::vector<std::int64_t> parse_detokenize_request(const Json& body);

// The body as a JSON object, or ApiError(400) saying why it is not one.
Json parse_body(const std::string& body);

}  // namespace bitrun::http
