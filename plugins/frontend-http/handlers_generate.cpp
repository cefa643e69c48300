// /v1/chat/completions and /v1/completions: validate, build the prompt, start a decoder session, submit it to the
// scheduler (429 when full), then answer with one JSON body or stream SSE events as tokens arrive.
#include "api.hpp"
#include "api_error.hpp"
#include "bitrun/chat_template.hpp"
#include "bitrun/config.hpp"
#include "bitrun/decoder_set.hpp"
#include "bitrun/log.hpp"
#include "bitrun/model.hpp"
#include "bitrun/decode_request.hpp"
#include "bitrun/scheduler.hpp"
#include "bitrun/tokenizer.hpp"
#include "connection.hpp"
#include "generation.hpp"
#include "responses.hpp"
#include "sse.hpp"

namespace bitrun::http {
namespace {

// Status recorded for a request whose client left before the answer (nginx's convention; nobody receives it).
constexpr int kClientClosed = 499;

}  // namespace

std::vector<std::int32_t> Api::prompt_tokens(const GenerationRequest& r) const {
  const Tokenizer& tok = ctx_.model.tokenizer();
  if (r.endpoint == Endpoint::Chat)
    return encode_chat(tok, select_chat_template(ctx_.config.get_string("chat.template"), tok), r.messages,
                       /*add_generation_prompt=*/true);
  if (!r.prompt_is_tokens) return tok.encode(r.prompt_text, /*add_bos=*/true, /*parse_special=*/true);
  for (std::size_t i = 0; i < r.prompt_tokens.size(); ++i)
    if (r.prompt_tokens[i] >= tok.vocab_size())
      bad_request("prompt[" + std::to_string(i) + "] = " + std::to_string(r.prompt_tokens[i]) +
                  " is not a token id (the vocabulary has " + std::to_string(tok.vocab_size()) + ")");
  return r.prompt_tokens;
}

void Api::generate(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) const {
  const GenerationRequest r = parse_generation_request(parse_body(req.body), endpoint, settings_.limits);
  if (r.model && *r.model != ctx_.model_id)
    throw ApiError(404, "model '" + *r.model + "' does not exist: this server serves '" + ctx_.model_id +
                            "' (see /v1/models)");
  const Tokenizer& tok = ctx_.model.tokenizer();
  // A text far too long for the context is refused before it is tokenized: no token covers more bytes than the
  // longest token text, so this many tokens at least.
  std::size_t text_bytes = r.prompt_is_tokens ? 0 : r.prompt_text.size();
  for (const auto& m : r.messages) text_bytes += m.content.size();
  const std::int64_t context = request_context_size(ctx_.config, ctx_.model);
  if (const auto at_least = static_cast<std::int64_t>(text_bytes / tok.max_token_text_bytes()); at_least >= context)
    bad_request("the prompt is at least " + std::to_string(at_least) + " tokens long (" + std::to_string(text_bytes) +
                " bytes of text) but the context holds " + std::to_string(context));
  std::vector<std::int32_t> prompt = prompt_tokens(r);
  if (prompt.empty()) bad_request("the prompt is empty and the model has no BOS token to start from");
  const std::int64_t prompt_size = static_cast<std::int64_t>(prompt.size());
  // A completion continues its prompt's text, so its first token keeps a leading space; a chat answer starts anew.
  const bool continuation = endpoint == Endpoint::Completion && !tok.decode(prompt).empty();

  DecodeRequest decode = make_decode_request(ctx_.config, ctx_.model, std::move(prompt), r.max_tokens);
  if (prompt_size >= decode.context_size)
    bad_request("the prompt has " + std::to_string(prompt_size) + " tokens but the context holds " +
                std::to_string(decode.context_size) + " (at least one position must be left to generate)");
  apply_sampling(r, decode.sampling);
  decode.logprobs = r.logprobs;
  decode.decoder_options = r.decoder_options;
  // A decoder refusing the request (bad option, unknown decoder) throws bitrun::Error: a 400 with its message.
  std::unique_ptr<DecodeSession> session = ctx_.decoders.start(r.decoder, decode);
  Scheduler::Handle handle = ctx_.scheduler.submit(std::move(session), decode.context_size,
                                                   static_cast<std::size_t>(prompt_size));

  const ClientConnection client(req);
  auto gen = std::make_shared<Generation>(std::move(handle), tok, r.stop ? *r.stop : settings_.default_stop, continuation,
                                          Generation::Clock::now() + settings_.request_timeout,
                                          [client] { return client.alive(); });
  const ResponseHeader header = make_header(endpoint, ctx_.model_id);

  if (!r.stream) {
    const Piece all = gen->collect();
    switch (gen->outcome()) {
      case Outcome::Finished: {
        Json logprobs = r.logprobs >= 0 ? logprobs_json(endpoint, tok, all.logprobs, r.logprobs) : Json();
        Json body = completion_json(header, all.text, gen->finish_reason(), std::move(logprobs),
                                    usage_json(prompt_size, gen->completion_tokens()));
        body["bitrun"] = decode_stats_json(gen->stats(), gen->seconds());
        send_json(res, 200, body.dump());
        return;
      }
      case Outcome::Disconnected:
        send_json(res, kClientClosed, error_body(kClientClosed, "the client closed the connection"));
        return;
      default:
        throw ApiError(outcome_status(gen->outcome()), gen->error());
    }
  }

  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");   // proxies must not buffer the stream
  StreamSettings settings;
  settings.include_usage = r.include_usage;
  settings.logprobs = r.logprobs;
  settings.prompt_tokens = prompt_size;
  // httplib calls the provider after this handler returned, on the same connection thread; nothing may escape it.
  res.set_chunked_content_provider(
      "text/event-stream",
      [gen, header, settings, &tok](std::size_t, httplib::DataSink& sink) {
        try {
          const bool ok = stream_events(*gen, header, tok, settings, [&sink](const std::string& bytes) {
            return sink.write(bytes.data(), bytes.size());
          });
          if (!ok) return false;
          sink.done();
          return true;
        } catch (const std::exception& e) {
          logger("http")->error("stream {} failed: {}", header.id, e.what());
        } catch (...) {
          logger("http")->error("stream {} failed", header.id);
        }
        gen->client_gone();
        return false;
      },
      [gen](bool success) {
        if (!success) gen->client_gone();   // the connection failed: free the sequence now
      });
}

}  // namespace bitrun::http
