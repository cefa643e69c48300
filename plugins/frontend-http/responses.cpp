#include "responses.hpp"

#include <chrono>
#include <cmath>
#include <random>

#include "bitrun/tokenizer/tokenizer.hpp"

namespace bitrun::http {
namespace {

std::string random_id(const char* prefix) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  static const char* kChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string id = prefix;
  for (int i = 0; i < 24; ++i) id += kChars[rng() % 62];
  return id;
}

// OpenAI reports an impossible token as -9999 rather than -inf, which JSON cannot carry.
float finite_logprob(float lp) { return std::isfinite(lp) ? lp : -9999.0f; }

Json bytes_json(const std::string& bytes) {
  Json a = Json::array();
  for (unsigned char c : bytes) a.push_back(static_cast<int>(c));
  return a;
}

Json chat_token(const Tokenizer& tok, std::int32_t id, float lp) {
  const std::string bytes = tok.token_bytes(id, /*render_special=*/true);
  Json t = Json::object();
  t["token"] = bytes;   // written as valid UTF-8; `bytes` keeps the exact bytes of a partial character
  t["logprob"] = finite_logprob(lp);
  t["bytes"] = bytes_json(bytes);
  return t;
}

// The fields every completion object and chunk starts with, in OpenAI's order, around its one choice.
Json envelope(const ResponseHeader& h, const char* object, Json choice) {
  Json out = Json::object();
  out["id"] = h.id;
  out["object"] = object;
  out["created"] = h.created;
  out["model"] = h.model;
  out["choices"] = Json(Json::Array{std::move(choice)});
  return out;
}

}  // namespace

ResponseHeader make_header(Endpoint endpoint, const std::string& model) {
  ResponseHeader h;
  h.endpoint = endpoint;
  h.id = random_id(endpoint == Endpoint::Chat ? "chatcmpl-" : "cmpl-");
  h.created = std::chrono::duration_cast<std::chrono::seconds>(
                  std::chrono::system_clock::now().time_since_epoch()).count();
  h.model = model;
  return h;
}

Json usage_json(std::int64_t prompt_tokens, std::int64_t completion_tokens) {
  Json u = Json::object();
  u["prompt_tokens"] = prompt_tokens;
  u["completion_tokens"] = completion_tokens;
  u["total_tokens"] = prompt_tokens + completion_tokens;
  return u;
}

Json decode_stats_json(const SequenceStats& st, double seconds) {
  Json j = Json::object();
  j["forwards"] = st.forwards;
  j["rows"] = st.rows;
  j["tokens"] = st.tokens;
  j["tokens_per_forward"] = st.tokens_per_forward();
  j["rows_per_forward"] = st.forwards ? static_cast<double>(st.rows) / static_cast<double>(st.forwards) : 0.0;
  j["seconds"] = seconds;
  return j;
}

Json logprobs_json(Endpoint endpoint, const Tokenizer& tok, const std::vector<TokenLogprob>& logprobs,
                   std::int32_t top, std::size_t offset_base) {
  if (endpoint == Endpoint::Chat) {
    Json content = Json::array();
    for (const TokenLogprob& lp : logprobs) {
      Json t = chat_token(tok, lp.token, lp.logprob);
      Json alternatives = Json::array();
      for (std::size_t i = 0; i < lp.top.size() && i < static_cast<std::size_t>(top); ++i)
        alternatives.push_back(chat_token(tok, lp.top[i].first, lp.top[i].second));
      t["top_logprobs"] = std::move(alternatives);
      content.push_back(std::move(t));
    }
    Json out = Json::object();
    out["content"] = std::move(content);
    out["refusal"] = nullptr;
    return out;
  }
  Json tokens = Json::array(), token_logprobs = Json::array(), tops = Json::array(), offsets = Json::array();
  std::size_t offset = offset_base;
  for (const TokenLogprob& lp : logprobs) {
    const std::string text = tok.token_bytes(lp.token, true);
    tokens.push_back(text);
    token_logprobs.push_back(finite_logprob(lp.logprob));
    Json alternatives = Json::object();
    for (std::size_t i = 0; i < lp.top.size() && i < static_cast<std::size_t>(top); ++i) {
      const std::string alt = tok.token_bytes(lp.top[i].first, true);
      if (!alternatives.find(alt)) alternatives[alt] = finite_logprob(lp.top[i].second);
    }
    tops.push_back(std::move(alternatives));
    offsets.push_back(static_cast<std::int64_t>(offset));
    offset += text.size();
  }
  Json out = Json::object();
  out["tokens"] = std::move(tokens);
  out["token_logprobs"] = std::move(token_logprobs);
  out["top_logprobs"] = std::move(tops);
  out["text_offset"] = std::move(offsets);
  return out;
}

Json completion_json(const ResponseHeader& h, const std::string& text, const char* finish_reason, Json logprobs,
                     const Json& usage) {
  Json choice = Json::object();
  choice["index"] = 0;
  if (h.endpoint == Endpoint::Chat) {
    Json message = Json::object();
    message["role"] = "assistant";
    message["content"] = text;
    message["refusal"] = nullptr;
    choice["message"] = std::move(message);
  } else {
    choice["text"] = text;
  }
  choice["logprobs"] = std::move(logprobs);
  choice["finish_reason"] = finish_reason;
  Json out = envelope(h, h.endpoint == Endpoint::Chat ? "chat.completion" : "text_completion", std::move(choice));
  out["usage"] = usage;
  return out;
}

Json chunk_json(const ResponseHeader& h, const std::string* role, const std::string* text, const char* finish_reason,
                Json logprobs, bool with_usage_field) {
  Json choice = Json::object();
  choice["index"] = 0;
  if (h.endpoint == Endpoint::Chat) {
    Json delta = Json::object();
    if (role) delta["role"] = *role;
    if (text) delta["content"] = *text;
    choice["delta"] = std::move(delta);
  } else {
    choice["text"] = text ? *text : std::string();
  }
  choice["logprobs"] = std::move(logprobs);
  choice["finish_reason"] = finish_reason ? Json(finish_reason) : Json();
  Json out = envelope(h, h.endpoint == Endpoint::Chat ? "chat.completion.chunk" : "text_completion", std::move(choice));
  if (with_usage_field) out["usage"] = nullptr;
  return out;
}

Json usage_chunk_json(const ResponseHeader& h, const Json& usage) {
  Json out = Json::object();
  out["id"] = h.id;
  out["object"] = h.endpoint == Endpoint::Chat ? "chat.completion.chunk" : "text_completion";
  out["created"] = h.created;
  out["model"] = h.model;
  out["choices"] = Json::array();
  out["usage"] = usage;
  return out;
}

}  // namespace bitrun::http
