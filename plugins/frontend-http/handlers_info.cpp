// Health, model list, tokenizer and metrics endpoints.
#include <chrono>

#include "api.hpp"
#include "api_error.hpp"
#include "bitrun/config/config.hpp"
#include "bitrun/engine/decode_request.hpp"
#include "bitrun/model/model.hpp"
#include "bitrun/engine/scheduler.hpp"
#include "bitrun/tokenizer/tokenizer.hpp"
#include "bitrun/base/json.hpp"

namespace bitrun::http {

namespace {

Json model_json(const ServeContext& ctx) {
  Json m = Json::object();
  m["id"] = ctx.model_id;
  m["object"] = "model";
  m["created"] = static_cast<std::int64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(ctx.loaded_at.time_since_epoch()).count());
  m["owned_by"] = "bitrun";
  // bitrun's own fields (OpenAI clients ignore them; the chat page shows them).
  Json info = Json::object();
  info["architecture"] = ctx.model.architecture().name;
  info["context_length"] = request_context_size(ctx.config, ctx.model);
  info["backend"] = ctx.model.backend().name();
  info["vocab_size"] = ctx.model.hparams().n_vocab;
  const ModelFacts facts = model_facts(ctx.model);
  info["mask_token"] = facts.mask_token;
  info["default_decoder"] = ctx.config.get_string("decoder.type");
  m["bitrun"] = std::move(info);
  return m;
}

}  // namespace

void send_json(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "application/json");
}

Api::Api(ServeContext& context, const ServerSettings& settings, const HttpCounters& counters)
    : ctx_(context), settings_(settings), counters_(counters) {}

void Api::health(const httplib::Request&, httplib::Response& res) const {
  send_json(res, 200, R"({"status":"ok"})");
}

void Api::models(const httplib::Request&, httplib::Response& res) const {
  Json list = Json::object();
  list["object"] = "list";
  list["data"] = Json(Json::Array{model_json(ctx_)});
  send_json(res, 200, list.dump());
}

void Api::model(const httplib::Request& req, httplib::Response& res) const {
  const std::string id = req.matches.size() > 1 ? std::string(req.matches[1]) : std::string();
  if (id != ctx_.model_id)
    throw ApiError(404, "model '" + id + "' does not exist: this server serves '" + ctx_.model_id + "'");
  send_json(res, 200, model_json(ctx_).dump());
}

void Api::tokenize(const httplib::Request& req, httplib::Response& res) const {
  const TokenizeRequest r = parse_tokenize_request(parse_body(req.body));
  const Tokenizer& tok = ctx_.model.tokenizer();
  const std::vector<std::int32_t> ids = tok.encode(r.content, r.add_special, r.parse_special);
  Json tokens = Json::array();
  for (std::int32_t id : ids) {
    if (!r.with_pieces) {
      tokens.push_back(id);
      continue;
    }
    // A piece that is not whole UTF-8 (part of a character) is given as its bytes, as llama.cpp's server does.
    const std::string piece = tok.token_bytes(id, /*render_special=*/true);
    Json t = Json::object();
    t["id"] = id;
    if (valid_utf8(piece)) {
      t["piece"] = piece;
    } else {
      Json bytes = Json::array();
      for (unsigned char c : piece) bytes.push_back(static_cast<int>(c));
      t["piece"] = std::move(bytes);
    }
    tokens.push_back(std::move(t));
  }
  Json out = Json::object();
  out["tokens"] = std::move(tokens);
  send_json(res, 200, out.dump());
}

void Api::detokenize(const httplib::Request& req, httplib::Response& res) const {
  const std::vector<std::int64_t> given = parse_detokenize_request(parse_body(req.body));
  const Tokenizer& tok = ctx_.model.tokenizer();
  std::vector<std::int32_t> ids;
  for (std::size_t i = 0; i < given.size(); ++i) {
    if (given[i] < 0 || given[i] >= tok.vocab_size())
      bad_request("tokens[" + std::to_string(i) + "] = " + std::to_string(given[i]) +
                  " is not a token id (the vocabulary has " + std::to_string(tok.vocab_size()) + ")");
    ids.push_back(static_cast<std::int32_t>(given[i]));
  }
  Json out = Json::object();
  out["content"] = tok.decode(ids);
  send_json(res, 200, out.dump());
}

void Api::metrics(const httplib::Request&, httplib::Response& res) const {
  res.status = 200;
  res.set_content(
      render_metrics(ctx_.scheduler.stats(), counters_.snapshot(), counters_.dropped_connections(), ctx_.model_id),
      "text/plain; version=0.0.4");
}

}  // namespace bitrun::http
