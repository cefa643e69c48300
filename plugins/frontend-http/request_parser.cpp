#include "request_parser.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string_view>

#include "api_error.hpp"

namespace bitrun::http {
namespace {

constexpr std::size_t kMaxStops = 16;
constexpr std::int64_t kMaxTopLogprobs = 20;

// OpenAI parameters this server knows but does not implement: refused by name, so a client never believes they
// took effect.
constexpr std::array<std::string_view, 18> kUnsupported = {
    "tools",          "tool_choice", "functions",  "function_call",    "response_format", "logit_bias",
    "parallel_tool_calls", "audio",  "modalities", "prediction",       "reasoning_effort", "service_tier",
    "store",          "metadata",    "web_search_options", "best_of",  "suffix",          "echo"};

std::string quoted(std::string_view field) {
  std::string out(1, '\'');
  out.append(field);
  out += '\'';
  return out;
}

[[noreturn]] void wrong_type(std::string_view field, const char* want, const Json& got) {
  bad_request(quoted(field) + " must be " + want + ", got " + Json::type_name(got.type()));
}

bool get_bool(std::string_view field, const Json& v) {
  if (!v.is_bool()) wrong_type(field, "a boolean", v);
  return v.as_bool();
}

const std::string& get_string(std::string_view field, const Json& v) {
  if (!v.is_string()) wrong_type(field, "a string", v);
  return v.as_string();
}

double get_number(std::string_view field, const Json& v, double min, double max) {
  if (!v.is_number()) wrong_type(field, "a number", v);
  const double x = v.as_double();
  if (!(x >= min && x <= max))
    bad_request(quoted(field) + " must be between " + Json(min).dump() + " and " + Json(max).dump() + ", got " +
                v.number_text());
  return x;
}

std::int64_t get_int(std::string_view field, const Json& v, std::int64_t min, std::int64_t max) {
  if (!v.is_number()) wrong_type(field, "an integer", v);
  if (!v.is_integer()) bad_request(quoted(field) + " must be an integer, got " + v.number_text());
  const std::int64_t x = v.as_int();
  if (x < min || x > max)
    bad_request(quoted(field) + " must be between " + std::to_string(min) + " and " + std::to_string(max) +
                ", got " + std::to_string(x));
  return x;
}

// Text of a message's content: a string, or an array of {"type":"text","text":...} parts.
std::string message_content(const std::string& field, const Json& v) {
  if (v.is_string()) return v.as_string();
  if (!v.is_array()) wrong_type(field, "a string or an array of text parts", v);
  std::string text;
  for (std::size_t i = 0; i < v.as_array().size(); ++i) {
    const Json& part = v.as_array()[i];
    const std::string at = field + "[" + std::to_string(i) + "]";
    if (!part.is_object()) wrong_type(at, "an object", part);
    const Json* type = part.find("type");
    if (!type || !type->is_string()) bad_request(quoted(at + ".type") + " is required and must be a string");
    if (type->as_string() != "text")
      bad_request(quoted(at + ".type") + " is '" + type->as_string() + "': only text content is supported");
    for (const auto& [k, val] : part.as_object())
      if (k != "type" && k != "text") bad_request("unknown field " + quoted(at + "." + k));
    const Json* t = part.find("text");
    if (!t) bad_request(quoted(at + ".text") + " is required");
    text += get_string(at + ".text", *t);
  }
  return text;
}

std::vector<ChatMessage> parse_messages(const Json& v) {
  if (!v.is_array()) wrong_type("messages", "an array", v);
  if (v.as_array().empty()) bad_request("'messages' must not be empty");
  std::vector<ChatMessage> out;
  for (std::size_t i = 0; i < v.as_array().size(); ++i) {
    const Json& m = v.as_array()[i];
    const std::string at = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) wrong_type(at, "an object", m);
    ChatMessage msg;
    bool has_content = false;
    for (const auto& [k, val] : m.as_object()) {
      if (k == "role") {
        msg.role = get_string(at + ".role", val);
      } else if (k == "content") {
        if (val.is_null()) continue;
        msg.content = message_content(at + ".content", val);
        has_content = true;
      } else if (k == "name") {
        if (!val.is_null()) get_string(at + ".name", val);   // accepted; chat templates have no place for it
      } else if (k == "refusal") {
        if (!val.is_null()) bad_request(quoted(at + ".refusal") + " is not supported");
      } else if (k == "tool_calls" || k == "function_call" || k == "tool_call_id" || k == "audio") {
        if (!val.is_null()) bad_request(quoted(at + "." + k) + " is not supported: this server has no tool calling");
      } else {
        bad_request("unknown field " + quoted(at + "." + k));
      }
    }
    if (msg.role.empty()) bad_request(quoted(at + ".role") + " is required");
    if (msg.role == "developer") msg.role = "system";   // OpenAI's newer name for the system role
    if (msg.role != "system" && msg.role != "user" && msg.role != "assistant")
      bad_request(quoted(at + ".role") + " is '" + msg.role + "': expected system, developer, user or assistant");
    if (!has_content && msg.role != "assistant") bad_request(quoted(at + ".content") + " is required");
    out.push_back(std::move(msg));
  }
  return out;
}

std::vector<std::string> parse_stop(const Json& v) {
  std::vector<std::string> out;
  if (v.is_string()) {
    out.push_back(v.as_string());
  } else if (v.is_array()) {
    if (v.as_array().size() > kMaxStops)
      bad_request("'stop' has " + std::to_string(v.as_array().size()) + " strings; at most " +
                  std::to_string(kMaxStops) + " are allowed");
    for (std::size_t i = 0; i < v.as_array().size(); ++i)
      out.push_back(get_string("stop[" + std::to_string(i) + "]", v.as_array()[i]));
  } else {
    wrong_type("stop", "a string or an array of strings", v);
  }
  return out;
}

void parse_prompt(const Json& v, GenerationRequest& r) {
  if (v.is_string()) {
    r.prompt_text = v.as_string();
    return;
  }
  if (!v.is_array()) wrong_type("prompt", "a string, an array of token ids, or an array of one string", v);
  const auto& a = v.as_array();
  if (a.empty()) bad_request("'prompt' must not be an empty array");
  if (a[0].is_string() || a[0].is_array()) {
    if (a.size() > 1) bad_request("'prompt' holds " + std::to_string(a.size()) +
                                  " prompts: several prompts in one request are not supported");
    parse_prompt(a[0], r);
    return;
  }
  r.prompt_is_tokens = true;
  for (std::size_t i = 0; i < a.size(); ++i)
    r.prompt_tokens.push_back(static_cast<std::int32_t>(
        get_int("prompt[" + std::to_string(i) + "]", a[i], 0, std::numeric_limits<std::int32_t>::max())));
}

void parse_decoder(const Json& v, GenerationRequest& r) {
  if (!v.is_object()) wrong_type("decoder", "an object", v);
  for (const auto& [k, val] : v.as_object()) {
    const std::string at = "decoder." + k;
    if (k == "type") {
      r.decoder = get_string(at, val);
      if (r.decoder.empty()) bad_request("'decoder.type' must not be empty");
    } else if (val.is_string()) {
      r.decoder_options[k] = val.as_string();
    } else if (val.is_number()) {
      r.decoder_options[k] = val.number_text();   // as written: "0.90" reaches the decoder as 0.90
    } else if (val.is_bool()) {
      r.decoder_options[k] = val.as_bool() ? "true" : "false";
    } else {
      wrong_type(at, "a string, number or boolean", val);
    }
  }
}

}  // namespace

Json parse_body(const std::string& body) {
  if (body.empty()) bad_request("the request body is empty: expected a JSON object");
  Json json;
  try {
    json = Json::parse(body);
  } catch (const JsonError& e) {
    bad_request(std::string("the request body is not valid JSON: ") + e.what());
  }
  if (!json.is_object()) bad_request(std::string("the request body must be a JSON object, got ") +
                                     Json::type_name(json.type()));
  return json;
}

GenerationRequest parse_generation_request(const Json& body, Endpoint endpoint, const GenerationLimits& limits) {
  GenerationRequest r;
  r.endpoint = endpoint;
  const bool chat = endpoint == Endpoint::Chat;
  std::optional<std::int64_t> max_tokens, max_completion_tokens;
  bool has_messages = false, has_prompt = false, has_top_logprobs = false, chat_logprobs = false;
  const Json* stream_options = nullptr;
  std::int64_t top_logprobs = 0;

  for (const auto& [k, v] : body.as_object()) {
    if (v.is_null()) continue;
    if (std::find(kUnsupported.begin(), kUnsupported.end(), k) != kUnsupported.end()) {
      // Values that ask for nothing are harmless (echo: false, best_of: 1, logit_bias: {}).
      if ((v.is_bool() && !v.as_bool()) || (k == "best_of" && v.is_integer() && v.as_int() == 1) ||
          (v.is_object() && v.as_object().empty()) || (v.is_array() && v.as_array().empty()))
        continue;
      bad_request(quoted(k) + " is not supported by this server");
    }
    if (k == "model") r.model = get_string(k, v);
    else if (k == "user") get_string(k, v);   // accepted for compatibility; not used
    else if (chat && k == "messages") r.messages = parse_messages(v), has_messages = true;
    else if (!chat && k == "prompt") parse_prompt(v, r), has_prompt = true;
    else if (k == "max_tokens") max_tokens = get_int(k, v, 1, std::numeric_limits<std::int32_t>::max());
    else if (chat && k == "max_completion_tokens")
      max_completion_tokens = get_int(k, v, 1, std::numeric_limits<std::int32_t>::max());
    else if (k == "temperature") r.temperature = static_cast<float>(get_number(k, v, 0.0, 2.0));
    else if (k == "top_p") r.top_p = static_cast<float>(get_number(k, v, 0.0, 1.0));
    else if (k == "min_p") r.min_p = static_cast<float>(get_number(k, v, 0.0, 1.0));
    else if (k == "top_k") r.top_k = static_cast<std::int32_t>(get_int(k, v, 0, 1 << 30));
    else if (k == "presence_penalty") r.presence_penalty = static_cast<float>(get_number(k, v, -2.0, 2.0));
    else if (k == "frequency_penalty") r.frequency_penalty = static_cast<float>(get_number(k, v, -2.0, 2.0));
    else if (k == "repeat_penalty") {
      r.repeat_penalty = static_cast<float>(get_number(k, v, 0.0, 100.0));
      if (*r.repeat_penalty <= 0.0f) bad_request("'repeat_penalty' must be greater than 0");
    } else if (k == "penalty_last_n") r.penalty_last_n = static_cast<std::int32_t>(get_int(k, v, 0, 1 << 30));
    else if (k == "seed")
      r.seed = static_cast<std::uint64_t>(get_int(k, v, std::numeric_limits<std::int64_t>::min(),
                                                  std::numeric_limits<std::int64_t>::max()));
    else if (k == "stop") r.stop = parse_stop(v);
    else if (k == "n") {
      if (get_int(k, v, 0, std::numeric_limits<std::int32_t>::max()) != 1)
        bad_request("'n' must be 1: this server returns one choice per request");
    } else if (k == "stream") r.stream = get_bool(k, v);
    else if (k == "stream_options") {
      if (!v.is_object()) wrong_type(k, "an object", v);
      stream_options = &v;
    } else if (k == "logprobs") {
      if (chat) chat_logprobs = get_bool(k, v);
      else r.logprobs = static_cast<std::int32_t>(get_int(k, v, 0, kMaxTopLogprobs));
    } else if (chat && k == "top_logprobs") {
      top_logprobs = get_int(k, v, 0, kMaxTopLogprobs);
      has_top_logprobs = true;
    } else if (k == "decoder") parse_decoder(v, r);
    else bad_request("unknown field " + quoted(k));
  }

  if (chat && !has_messages) bad_request("'messages' is required");
  if (!chat && !has_prompt) bad_request("'prompt' is required");
  if (chat) {
    if (has_top_logprobs && !chat_logprobs) bad_request("'top_logprobs' requires 'logprobs': true");
    if (chat_logprobs) r.logprobs = static_cast<std::int32_t>(top_logprobs);
  }
  if (stream_options) {
    if (!r.stream) bad_request("'stream_options' is only allowed when 'stream' is true");
    for (const auto& [k, v] : stream_options->as_object()) {
      if (k == "include_usage") {
        if (!v.is_null()) r.include_usage = get_bool("stream_options.include_usage", v);
      } else {
        bad_request("unknown field " + quoted("stream_options." + k));
      }
    }
  }
  if (max_tokens && max_completion_tokens && *max_tokens != *max_completion_tokens)
    bad_request("'max_tokens' and 'max_completion_tokens' disagree: give one of them");
  const std::optional<std::int64_t> asked = max_completion_tokens ? max_completion_tokens : max_tokens;
  const char* asked_name = max_completion_tokens ? "max_completion_tokens" : "max_tokens";
  if (asked && *asked > limits.max_tokens_cap)
    bad_request(quoted(asked_name) + " is " + std::to_string(*asked) + "; this server allows at most " +
                std::to_string(limits.max_tokens_cap) + " (server.max_tokens_cap)");
  r.max_tokens = asked ? *asked : std::min(limits.default_max_tokens, limits.max_tokens_cap);
  return r;
}

void apply_sampling(const GenerationRequest& r, SamplingParams& p) {
  if (r.temperature) p.temperature = *r.temperature;
  if (r.top_p) p.top_p = *r.top_p;
  if (r.min_p) p.min_p = *r.min_p;
  if (r.top_k) p.top_k = *r.top_k;
  if (r.repeat_penalty) p.repeat_penalty = *r.repeat_penalty;
  if (r.presence_penalty) p.presence_penalty = *r.presence_penalty;
  if (r.frequency_penalty) p.frequency_penalty = *r.frequency_penalty;
  if (r.penalty_last_n) p.penalty_last_n = *r.penalty_last_n;
  if (r.seed) p.seed = *r.seed;
}

TokenizeRequest parse_tokenize_request(const Json& body) {
  TokenizeRequest r;
  bool has_content = false;
  for (const auto& [k, v] : body.as_object()) {
    if (v.is_null()) continue;
    if (k == "content") r.content = get_string(k, v), has_content = true;
    else if (k == "add_special") r.add_special = get_bool(k, v);
    else if (k == "parse_special") r.parse_special = get_bool(k, v);
    else if (k == "with_pieces") r.with_pieces = get_bool(k, v);
    else bad_request("unknown field " + quoted(k));
  }
  if (!has_content) bad_request("'content' is required");
  return r;
}

std::vector<std::int64_t> parse_detokenize_request(const Json& body) {
  std::vector<std::int64_t> tokens;
  bool has_tokens = false;
  for (const auto& [k, v] : body.as_object()) {
    if (v.is_null()) continue;
    if (k != "tokens") bad_request("unknown field " + quoted(k));
    if (!v.is_array()) wrong_type(k, "an array of token ids", v);
    has_tokens = true;
    for (std::size_t i = 0; i < v.as_array().size(); ++i)
      tokens.push_back(get_int("tokens[" + std::to_string(i) + "]", v.as_array()[i],
                               std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max()));
  }
  if (!has_tokens) bad_request("'tokens' is required");
  return tokens;
}

}  // namespace bitrun::http
