// /v1/chat/completions and /v1/completions: validate, build the prompt, start a decoder session, submit it to the
// scheduler (429 when full), then answer with one JSON body or stream SSE events as tokens arrive.
#include "api.hpp"
#include "api_error.hpp"
#include "bitrun/tokenizer/chat_template.hpp"
#include "bitrun/config/config.hpp"
#include "bitrun/engine/decoder_set.hpp"
#include "bitrun/engine/generation.hpp"
#include "bitrun/base/log.hpp"
#include "bitrun/model/model.hpp"
#include "bitrun/engine/decode_request.hpp"
#include "bitrun/engine/scheduler.hpp"
#include "bitrun/tokenizer/tokenizer.hpp"
#include "connection.hpp"
#include "responses.hpp"
#include "sse.hpp"

namespace bitrun::http {
namespace {

// Status recorded for a request whose client left before the answer (nginx's convention; nobody receives it).
constexpr int kClientClosed = 499;

}  // namespace

void Api::generate(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) const {
  const GenerationRequest r = parse_generation_request(parse_body(req.body), endpoint, settings_.limits);
  if (r.model && *r.model != ctx_.model_id)
    throw ApiError(404, "model '" + *r.model + "' does not exist: this server serves '" + ctx_.model_id +
                            "' (see /v1/models)");
  const Tokenizer& tok = ctx_.model.tokenizer();
  GenerationPrompt prompt;
  if (endpoint == Endpoint::Chat) {
    prompt.kind = GenerationPrompt::Kind::Chat;
    prompt.messages = r.messages;
  } else if (r.prompt_is_tokens) {
    prompt.kind = GenerationPrompt::Kind::Tokens;
    prompt.tokens = r.prompt_tokens;
  } else {
    prompt.text = r.prompt_text;
  }
  // Refusals (the prompt does not fit, a token id out of range) are bitrun::Errors: 400s with their message.
  PreparedGeneration prepared = prepare_generation(ctx_.config, ctx_.model, prompt, r.max_tokens);
  DecodeRequest& decode = prepared.request;
  const auto prompt_size = static_cast<std::int64_t>(decode.prompt.size());
  apply_sampling(r, decode.sampling);
  decode.logprobs = r.logprobs;
  decode.decoder_options = r.decoder_options;
  // A decoder refusing the request (bad option, unknown decoder) throws bitrun::Error: a 400 with its message.
  std::unique_ptr<DecodeSession> session = ctx_.decoders.start(r.decoder, decode);
  Scheduler::Handle handle = ctx_.scheduler.submit(std::move(session), decode.context_size,
                                                   static_cast<std::size_t>(prompt_size));

  const ClientConnection client(req);
  GenerationWatch watch;
  watch.deadline = Generation::Clock::now() + settings_.request_timeout;
  watch.deadline_message = "the request did not finish within server.request_timeout_s and was cancelled";
  watch.client_alive = [client] { return client.alive(); };
  auto gen = std::make_shared<Generation>(std::move(handle), tok, r.stop ? *r.stop : prepared.stops,
                                          prepared.continuation, std::move(watch));
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
