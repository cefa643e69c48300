// The HTTP frontend plugin against a real server on 127.0.0.1 (an ephemeral port) with stories260K: every
// endpoint, the exact SSE format, stop strings, logprobs, errors with their statuses, body limit, API keys, CORS,
// the bounded queue (429), request timeout, cancel on client disconnect, shutdown, and concurrent clients getting
// the same greedy text as one at a time. The test decoder plugin "slow" holds requests in flight on demand.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include <httplib.h>

#include "bitrun/tokenizer/chat_template.hpp"
#include "bitrun/config/config.hpp"
#include "bitrun/engine/decode_request.hpp"
#include "bitrun/engine/decoder_set.hpp"
#include "bitrun/engine/engine.hpp"
#include "bitrun/plugin/frontend.hpp"
#include "bitrun/base/log.hpp"
#include "bitrun/model/model.hpp"
#include "bitrun/plugin/plugin_host.hpp"
#include "bitrun/engine/scheduler.hpp"
#include "bitrun/tokenizer/stop_strings.hpp"
#include "bitrun/tokenizer/tokenizer.hpp"
#include "test_support.hpp"
#include "bitrun/base/json.hpp"

namespace bitrun {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

fs::path model_file() { return test::shared_path("models/stories260K.gguf"); }

PluginHost& host() {
  static PluginHost h({BITRUN_TEST_PLUGIN_DIR, BITRUN_TEST_DECODER_DIR}, detect_cpu());
  return h;
}

const Model& model() {
  static std::unique_ptr<Backend> backend = host().create_backend(host().choose_backend("auto"), 2);
  static std::unique_ptr<Model> m = Model::load(model_file(), *backend);
  return *m;
}

// A server on an ephemeral port, configured by `settings` ("key=value" as on the command line), torn down by the
// destructor. listen_only: the model is "still loading" until ready() is called.
class TestServer {
 public:
  explicit TestServer(const std::vector<std::string>& settings = {}, bool listen_only = false)
      : config_(host().config_schema()) {
    config_.set("server.port", "0", ConfigSource::CommandLine, "test");
    config_.set("sampling.temperature", "0", ConfigSource::CommandLine, "test");
    config_.set("log.level", "warn", ConfigSource::CommandLine, "test");
    for (const auto& s : settings) config_.set_from_cli(s);
    frontend_ = host().create_frontend("http", config_);
    port_ = frontend_->listen();
    if (!listen_only) ready();
  }
  void ready() {
    scheduler_ = std::make_unique<Scheduler>(
        model(), frontend_->scheduler_options());
    decoders_ = std::make_unique<DecoderSet>(host(), config_, config_.get_string("decoder.type"));
    context_ = std::make_unique<ServeContext>(
        ServeContext{config_, model(), *scheduler_, *decoders_, "stories260K", std::chrono::system_clock::now()});
    serving_ = std::async(std::launch::async, [this] { return frontend_->serve(*context_); });
    // serve() installs the routes' context before it blocks: wait until /health says so.
    for (int i = 0; i < 500 && client().Get("/health")->status != 200; ++i) std::this_thread::sleep_for(2ms);
  }
  ~TestServer() { stop(); }
  int stop() {
    if (!frontend_) return 0;
    frontend_->stop();
    const int rc = serving_.valid() ? serving_.get() : 0;
    frontend_.reset();
    return rc;
  }

  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60, 0);
    return c;
  }
  httplib::Result post(const std::string& path, const std::string& body, const httplib::Headers& headers = {}) const {
    return client().Post(path.c_str(), headers, body, "application/json");
  }
  int port() const { return port_; }
  Scheduler& scheduler() { return *scheduler_; }

 private:
  Config config_;
  std::unique_ptr<Frontend> frontend_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<DecoderSet> decoders_;
  std::unique_ptr<ServeContext> context_;
  std::future<int> serving_;
  int port_ = 0;
};

// A request on a raw socket, left open so the test decides when the client goes away.
class RawClient {
 public:
  // A JSON POST to `path`, framed by Content-Length.
  RawClient(int port, const std::string& path, const std::string& body)
      : RawClient(port, "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body) {}
  // Sends `request` as it is (any framing); send() more later.
  RawClient(int port, const std::string& request) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) ADD_FAILURE() << "connect failed";
    if (!send(request)) ADD_FAILURE() << "send failed";
  }
  // False once the server closed the connection (no SIGPIPE).
  bool send(const std::string& data) {
    return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
  }
  ~RawClient() { close(); }
  // Reads until `needle` shows up (or 10 s pass).
  std::string read_until(const std::string& needle) {
    timeval tv{0, 200000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const auto give_up = std::chrono::steady_clock::now() + 10s;
    char buf[4096];
    while (received_.find(needle) == std::string::npos && std::chrono::steady_clock::now() < give_up) {
      const ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n == 0) break;
      if (n > 0) received_.append(buf, static_cast<std::size_t>(n));
    }
    return received_;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // True once the server has ended the connection (end of stream or reset), without waiting.
  bool closed_by_peer() {
    char c;
    const ssize_t n = recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  }

 private:
  int fd_ = -1;
  std::string received_;
};

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds limit = 10s) {
  const auto give_up = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// The value of a Prometheus sample whose line starts with `name` (labels included), or -1.
double metric(const TestServer& s, const std::string& name) {
  auto r = s.client().Get("/metrics");
  if (!r || r->status != 200) return -1;
  std::istringstream in(r->body);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(name, 0) == 0 && (line[name.size()] == ' ' || line[name.size()] == '{'))
      return std::stod(line.substr(line.rfind(' ') + 1));
  return -1;
}

// The events of an SSE body: each `data: ` payload in order. Fails the test on any other line.
std::vector<std::string> sse_events(const std::string& body) {
  std::vector<std::string> events;
  std::size_t at = 0;
  while (at < body.size()) {
    const std::size_t end = body.find("\n\n", at);
    if (end == std::string::npos) {
      ADD_FAILURE() << "unterminated event: " << body.substr(at);
      break;
    }
    const std::string event = body.substr(at, end - at);
    at = end + 2;
    if (event.rfind(":", 0) == 0) continue;   // keep-alive comment
    if (event.rfind("data: ", 0) != 0 || event.find('\n') != std::string::npos) {
      ADD_FAILURE() << "not a single data line: " << event;
      continue;
    }
    events.push_back(event.substr(6));
  }
  return events;
}

// A streamed response the server's stop ended: its last event is an error saying so.
void expect_ended_by_shutdown(const httplib::Result& r) {
  ASSERT_TRUE(r);
  const auto events = sse_events(r->body);
  ASSERT_FALSE(events.empty());
  EXPECT_NE(events.back().find("shutting down"), std::string::npos) << events.back();
}

// The error object of a response after checking its status and shape.
Json expect_error(const httplib::Result& r, int status, const std::string& message_part) {
  if (!r) {
    ADD_FAILURE() << "no response";
    return Json();
  }
  EXPECT_EQ(r->status, status) << r->body;
  Json body;
  try {
    body = Json::parse(r->body);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "error body is not JSON: " << r->body;
    return Json();
  }
  const Json* error = body.find("error");
  if (!error) {
    ADD_FAILURE() << "no error object: " << r->body;
    return Json();
  }
  EXPECT_EQ(error->find("code")->as_int(), status);
  EXPECT_TRUE(error->find("type")->is_string());
  EXPECT_NE(error->find("message")->as_string().find(message_part), std::string::npos) << r->body;
  return *error;
}

// What greedy decoding of `prompt` gives when run straight on an engine: the text and the number of tokens.
// continuation: the text continues the prompt's (completions), so its first token keeps its leading space.
std::pair<std::string, std::size_t> greedy_reference(const std::vector<std::int32_t>& prompt, int max_tokens,
                                                     std::vector<std::string> stops = {}, bool continuation = false) {
  static std::unique_ptr<Decoder> ar = host().create_decoder("ar", Config(host().config_schema()));
  DecodeRequest r;
  r.prompt = prompt;
  r.max_tokens = max_tokens;
  r.context_size = static_cast<std::int32_t>(model().hparams().n_ctx_train);
  r.end_tokens = model().tokenizer().end_of_generation_tokens();
  Engine engine(model());
  TextStream text(model().tokenizer(), std::move(stops), continuation);
  std::string out;
  std::size_t count = 0;
  Engine::SequenceId id = 0;
  id = engine.add(ar->start(r), r.context_size, [&](Engine::SequenceId, const std::vector<std::int32_t>& t) {
    for (auto tok : t) {
      if (text.stopped()) break;
      ++count;
      out += text.push(tok);
    }
    if (text.stopped()) engine.cancel(id);
  });
  while (engine.step()) {
  }
  return {out + text.finish(), count};
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(model_file())) GTEST_SKIP() << model_file() << " not found (set BITRUN_SHARED_DIR)";
  }
};

TEST_F(ServerTest, HealthModelsTokenizeAndMetrics) {
  TestServer s;
  auto health = s.client().Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->body, R"({"status":"ok"})");

  auto models = s.client().Get("/v1/models");
  ASSERT_EQ(models->status, 200);
  const Json list = Json::parse(models->body);
  EXPECT_EQ(list.find("object")->as_string(), "list");
  const Json& m = list.find("data")->as_array().at(0);
  EXPECT_EQ(m.find("id")->as_string(), "stories260K");
  EXPECT_EQ(m.find("object")->as_string(), "model");
  EXPECT_GT(m.find("created")->as_int(), 1600000000);
  EXPECT_EQ(s.client().Get("/v1/models/stories260K")->status, 200);
  expect_error(s.client().Get("/v1/models/gpt-4"), 404, "model 'gpt-4' does not exist");

  auto tok = s.post("/tokenize", R"({"content":"Once upon a time"})");
  ASSERT_EQ(tok->status, 200);
  EXPECT_EQ(tok->body, R"({"tokens":[403,407,261,378]})");
  tok = s.post("/tokenize", R"({"content":"Once","add_special":true,"with_pieces":true})");
  EXPECT_EQ(tok->body, R"({"tokens":[{"id":1,"piece":"<s>"},{"id":403,"piece":" Once"}]})");
  auto detok = s.post("/detokenize", R"({"tokens":[1,403,407,261,378]})");
  ASSERT_EQ(detok->status, 200);
  EXPECT_EQ(detok->body, R"({"content":"Once upon a time"})");
  expect_error(s.post("/detokenize", R"({"tokens":[1,512]})"), 400, "tokens[1] = 512 is not a token id");
  expect_error(s.post("/tokenize", R"({"text":"x"})"), 400, "unknown field 'text'");

  auto metrics = s.client().Get("/metrics");
  ASSERT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->get_header_value("Content-Type").find("text/plain"), std::string::npos);
  for (const char* name : {"bitrun_requests_running", "bitrun_requests_waiting", "bitrun_prompt_tokens_total",
                           "bitrun_generated_tokens_total", "bitrun_decode_steps_total", "bitrun_tokens_per_second"})
    EXPECT_NE(metrics->body.find(std::string("# TYPE ") + name), std::string::npos) << name;
  EXPECT_NE(metrics->body.find("bitrun_http_responses_total{code=\"200\"}"), std::string::npos) << metrics->body;
}

TEST_F(ServerTest, ChatAndCompletionsGiveTheEngineGreedyText) {
  TestServer s;
  // Completions from a token prompt of BOS alone: the golden llama2.c text.
  auto r = s.post("/v1/completions", R"({"prompt":[1],"max_tokens":12,"temperature":0})");
  ASSERT_EQ(r->status, 200) << r->body;
  Json body = Json::parse(r->body);
  EXPECT_EQ(body.find("object")->as_string(), "text_completion");
  EXPECT_EQ(body.find("id")->as_string().rfind("cmpl-", 0), 0u);
  EXPECT_EQ(body.find("model")->as_string(), "stories260K");
  const Json& choice = body.find("choices")->as_array().at(0);
  EXPECT_EQ(choice.find("text")->as_string(), "Once upon a time, there was a little girl");
  EXPECT_EQ(choice.find("finish_reason")->as_string(), "length");
  EXPECT_TRUE(choice.find("logprobs")->is_null());
  const Json& usage = *body.find("usage");
  EXPECT_EQ(usage.find("prompt_tokens")->as_int(), 1);
  EXPECT_EQ(usage.find("completion_tokens")->as_int(), 12);
  EXPECT_EQ(usage.find("total_tokens")->as_int(), 13);

  // Chat: the plain template (stories260K has none), greedy, equals the engine run on the same prompt.
  const std::vector<ChatMessage> msgs = {{"system", "Be kind."}, {"user", "Tell me a story"}};
  const auto prompt = encode_chat(model().tokenizer(), ChatTemplate::Plain, msgs, true);
  r = s.post("/v1/chat/completions", R"({"model":"stories260K","messages":[{"role":"system","content":"Be kind."},
      {"role":"user","content":[{"type":"text","text":"Tell me "},{"type":"text","text":"a story"}]}],
      "max_tokens":30})");
  ASSERT_EQ(r->status, 200) << r->body;
  body = Json::parse(r->body);
  EXPECT_EQ(body.find("object")->as_string(), "chat.completion");
  EXPECT_EQ(body.find("id")->as_string().rfind("chatcmpl-", 0), 0u);
  const Json& message = *body.find("choices")->as_array().at(0).find("message");
  EXPECT_EQ(message.find("role")->as_string(), "assistant");
  const auto [expected, count] = greedy_reference(prompt, 30);
  EXPECT_EQ(message.find("content")->as_string(), expected);
  EXPECT_EQ(body.find("usage")->find("prompt_tokens")->as_int(), static_cast<std::int64_t>(prompt.size()));
  EXPECT_EQ(body.find("usage")->find("completion_tokens")->as_int(), static_cast<std::int64_t>(count));
}

TEST_F(ServerTest, StreamedChatHasOpenAisExactShape) {
  TestServer s;
  const std::string request = R"({"messages":[{"role":"user","content":"Hello"}],"max_tokens":25,"stream":true,
      "stream_options":{"include_usage":true}})";
  auto r = s.post("/v1/chat/completions", request);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_NE(r->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
  const std::vector<std::string> events = sse_events(r->body);
  ASSERT_GE(events.size(), 5u) << r->body;
  EXPECT_EQ(events.back(), "[DONE]");
  std::string id, text;
  for (std::size_t i = 0; i + 1 < events.size(); ++i) {
    const Json e = Json::parse(events[i]);   // also proves every chunk is valid UTF-8 JSON
    EXPECT_EQ(e.find("object")->as_string(), "chat.completion.chunk");
    if (i == 0) id = e.find("id")->as_string();
    EXPECT_EQ(e.find("id")->as_string(), id) << "one id per stream";
    EXPECT_TRUE(e.find("usage")) << "usage: null on every chunk when include_usage";
    const auto& choices = e.find("choices")->as_array();
    if (i == events.size() - 2) {   // the usage chunk
      EXPECT_TRUE(choices.empty());
      EXPECT_EQ(e.find("usage")->find("completion_tokens")->as_int(), 25);
      continue;
    }
    ASSERT_EQ(choices.size(), 1u);
    const Json& delta = *choices[0].find("delta");
    if (i == 0) {
      EXPECT_EQ(delta.find("role")->as_string(), "assistant");
      EXPECT_EQ(delta.find("content")->as_string(), "");
      EXPECT_TRUE(choices[0].find("finish_reason")->is_null());
    } else if (i == events.size() - 3) {   // the finish chunk
      EXPECT_EQ(delta.as_object().size(), 0u);
      EXPECT_EQ(choices[0].find("finish_reason")->as_string(), "length");
    } else {
      EXPECT_FALSE(delta.find("role"));
      EXPECT_FALSE(delta.find("content")->as_string().empty());
      EXPECT_TRUE(choices[0].find("finish_reason")->is_null());
      text += delta.find("content")->as_string();
    }
  }
  // The same request unstreamed gives the same text.
  auto whole = s.post("/v1/chat/completions", R"({"messages":[{"role":"user","content":"Hello"}],"max_tokens":25})");
  EXPECT_EQ(Json::parse(whole->body).find("choices")->as_array()[0].find("message")->find("content")->as_string(),
            text);
}

// The `decoder` object picks block diffusion per request: the text equals the engine's own diffusion run,
// streamed or not, and a mode the decoder does not know is a 400 naming it. stories260K is not a diffusion model,
// so token 0 is designated as its mask (this checks the plumbing, not the quality).
TEST_F(ServerTest, TheDecoderObjectSelectsBlockDiffusionPerRequest) {
  if (!host().find(PluginKind::Decoder, "diffusion")) GTEST_SKIP() << "the decoder-diffusion plugin is not built";
  TestServer s({"decoder.mask_token=0"});
  Config config(host().config_schema());
  config.set("decoder.mask_token", "0", ConfigSource::CommandLine, "test");
  config.set("sampling.temperature", "0", ConfigSource::CommandLine, "test");
  std::unique_ptr<Decoder> diffusion = host().create_decoder("diffusion", config);
  DecodeRequest request = make_decode_request(config, model(), {1}, 24);
  request.decoder_options["mode"] = "greedy";
  Engine engine(model());
  TextStream text(model().tokenizer(), {});
  std::string expected;
  std::size_t count = 0;
  engine.add(diffusion->start(request), request.context_size, [&](Engine::SequenceId, const std::vector<std::int32_t>& t) {
    for (auto tok : t) expected += text.push(tok), ++count;
  });
  while (engine.step()) {
  }
  expected += text.finish();
  ASSERT_GT(count, 0u);

  const std::string body = R"({"prompt":[1],"max_tokens":24,"decoder":{"type":"diffusion","mode":"greedy"})";
  auto r = s.post("/v1/completions", body + "}");
  ASSERT_EQ(r->status, 200) << r->body;
  const Json whole = Json::parse(r->body);
  EXPECT_EQ(whole.find("choices")->as_array().at(0).find("text")->as_string(), expected);
  EXPECT_EQ(whole.find("usage")->find("completion_tokens")->as_int(), static_cast<std::int64_t>(count));

  auto streamed = s.post("/v1/completions", body + R"(,"stream":true})");
  ASSERT_EQ(streamed->status, 200) << streamed->body;
  std::string joined;
  for (const std::string& e : sse_events(streamed->body)) {
    if (e == "[DONE]") continue;
    const Json chunk = Json::parse(e);
    const auto& choices = chunk.find("choices")->as_array();
    if (choices.empty()) continue;
    if (const Json* t = choices[0].find("text"); t && t->is_string()) joined += t->as_string();
  }
  EXPECT_EQ(joined, expected);

  expect_error(s.post("/v1/completions", R"({"prompt":[1],"decoder":{"type":"diffusion","mode":"fast"}})"), 400,
               "mode");
}

TEST_F(ServerTest, StreamedCompletionsAndUtf8IsNeverSplit) {
  TestServer s;
  // A streamed completion is the engine's greedy text, split into chunks.
  auto r = s.post("/v1/completions", R"({"prompt":"Once upon a time","max_tokens":40,"stream":true})");
  ASSERT_EQ(r->status, 200);
  const auto events = sse_events(r->body);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  for (std::size_t i = 0; i + 1 < events.size(); ++i) {
    const Json e = Json::parse(events[i]);
    EXPECT_EQ(e.find("object")->as_string(), "text_completion");
    EXPECT_FALSE(e.find("usage")) << "no usage unless asked for";
    const Json& c = e.find("choices")->as_array().at(0);
    text += c.find("text")->as_string();
    if (i + 2 == events.size()) {
      EXPECT_EQ(c.find("finish_reason")->as_string(), "length");
    }
  }
  const auto prompt = model().tokenizer().encode("Once upon a time", true, true);
  EXPECT_EQ(text, greedy_reference(prompt, 40, {}, /*continuation=*/true).first);


  // A character spelled by three byte tokens, emitted one token per step (the slow decoder repeats its prompt):
  // every chunk carries whole euro signs, never a part of one (which would have become U+FFFD).
  std::vector<std::int32_t> euro;
  for (const char* byte : {"<0xE2>", "<0x82>", "<0xAC>"}) euro.push_back(*model().tokenizer().find_token(byte));
  r = s.post("/v1/completions", "{\"prompt\":[" + std::to_string(euro[0]) + "," + std::to_string(euro[1]) + "," +
                                    std::to_string(euro[2]) +
                                    "],\"max_tokens\":12,\"stream\":true,\"decoder\":{\"type\":\"slow\",\"delay_ms\":5}}");
  ASSERT_EQ(r->status, 200);
  text.clear();
  std::size_t chunks = 0;
  for (const auto& e : sse_events(r->body)) {
    if (e == "[DONE]") continue;
    const std::string piece = Json::parse(e).find("choices")->as_array()[0].find("text")->as_string();
    if (piece.empty()) continue;
    ++chunks;
    EXPECT_EQ(piece.size() % 3, 0u) << piece;
    text += piece;
  }
  EXPECT_EQ(text, "\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC");
  EXPECT_GE(chunks, 2u);
}

TEST_F(ServerTest, StopStringsEndTheTextBeforeThem) {
  TestServer s;
  auto r = s.post("/v1/completions", R"({"prompt":[1],"max_tokens":60,"stop":["named", "xyz"]})");
  ASSERT_EQ(r->status, 200);
  const Json c = Json::parse(r->body).find("choices")->as_array()[0];
  EXPECT_EQ(c.find("text")->as_string(), "Once upon a time, there was a little girl ");
  EXPECT_EQ(c.find("finish_reason")->as_string(), "stop");
  // Streamed: no chunk shows any part of the stop string.
  r = s.post("/v1/completions", R"({"prompt":[1],"max_tokens":60,"stop":"named","stream":true})");
  std::string text;
  const auto events = sse_events(r->body);
  for (std::size_t i = 0; i + 1 < events.size(); ++i) {
    const Json ch = Json::parse(events[i]).find("choices")->as_array()[0];
    text += ch.find("text")->as_string();
    if (i + 2 == events.size()) {
      EXPECT_EQ(ch.find("finish_reason")->as_string(), "stop");
    }
  }
  EXPECT_EQ(text, "Once upon a time, there was a little girl ");
  // A request a stop string ended ran to its end: finished, not cancelled, in the metrics (which the scheduler
  // updates at its next step, after the response may have gone out).
  EXPECT_TRUE(eventually([&] { return metric(s, "bitrun_requests_running") == 0; }));
  EXPECT_EQ(metric(s, "bitrun_requests_finished_total"), 2);
  EXPECT_EQ(metric(s, "bitrun_requests_cancelled_total"), 0);
  // The config's generation.stop applies when the request has none.
  TestServer configured({"generation.stop=[\"little\"]"});
  r = configured.post("/v1/completions", R"({"prompt":[1],"max_tokens":60})");
  EXPECT_EQ(Json::parse(r->body).find("choices")->as_array()[0].find("text")->as_string(),
            "Once upon a time, there was a ");
}

TEST_F(ServerTest, LogprobsForChatAndCompletions) {
  TestServer s;
  auto r = s.post("/v1/chat/completions",
                  R"({"messages":[{"role":"user","content":"Hi"}],"max_tokens":6,"logprobs":true,"top_logprobs":3})");
  ASSERT_EQ(r->status, 200) << r->body;
  const Json body = Json::parse(r->body);
  const Json& lp = *body.find("choices")->as_array()[0].find("logprobs");
  const auto& content = lp.find("content")->as_array();
  ASSERT_EQ(content.size(), 6u);
  std::string joined;
  for (const Json& t : content) {
    EXPECT_LE(t.find("logprob")->as_double(), 0.0);
    const auto& top = t.find("top_logprobs")->as_array();
    ASSERT_EQ(top.size(), 3u);
    // Greedy: the chosen token is the most likely one.
    EXPECT_EQ(top[0].find("token")->as_string(), t.find("token")->as_string());
    EXPECT_DOUBLE_EQ(top[0].find("logprob")->as_double(), t.find("logprob")->as_double());
    EXPECT_GE(top[0].find("logprob")->as_double(), top[1].find("logprob")->as_double());
    for (const Json& b : t.find("bytes")->as_array()) joined += static_cast<char>(b.as_int());
  }
  const std::string content_text =
      body.find("choices")->as_array()[0].find("message")->find("content")->as_string();
  EXPECT_NE(joined.find(content_text.substr(1)), std::string::npos) << "the tokens' bytes spell the text";

  r = s.post("/v1/completions", R"({"prompt":[1],"max_tokens":4,"logprobs":2})");
  const Json c = *Json::parse(r->body).find("choices")->as_array()[0].find("logprobs");
  EXPECT_EQ(c.find("tokens")->as_array().size(), 4u);
  EXPECT_EQ(c.find("tokens")->as_array()[0].as_string(), " Once");
  EXPECT_EQ(c.find("token_logprobs")->as_array().size(), 4u);
  EXPECT_EQ(c.find("top_logprobs")->as_array()[0].as_object().size(), 2u);
  EXPECT_EQ(c.find("text_offset")->as_array()[1].as_int(), 5);

  // Streamed chat logprobs ride with the content deltas.
  r = s.post("/v1/chat/completions",
             R"({"messages":[{"role":"user","content":"Hi"}],"max_tokens":6,"logprobs":true,"stream":true})");
  std::size_t streamed = 0;
  for (const auto& e : sse_events(r->body)) {
    if (e == "[DONE]") continue;
    const Json ch = Json::parse(e).find("choices")->as_array()[0];
    if (ch.find("logprobs")->is_object()) streamed += ch.find("logprobs")->find("content")->as_array().size();
  }
  EXPECT_EQ(streamed, 6u);
}

TEST_F(ServerTest, BadRequestsGetClearErrorsWithTheRightStatus) {
  TestServer s({"server.max_tokens_cap=100", "server.max_body_bytes=4096", "context_size=64"});
  const std::string msgs = R"("messages":[{"role":"user","content":"hi"}])";
  expect_error(s.post("/v1/chat/completions", "{\"messages\": [}"), 400, "not valid JSON");
  expect_error(s.post("/v1/chat/completions", "{" + msgs + ",\"temperature\":\"hot\"}"), 400,
               "'temperature' must be a number");
  expect_error(s.post("/v1/chat/completions", "{" + msgs + ",\"frobnicate\":1}"), 400, "unknown field 'frobnicate'");
  expect_error(s.post("/v1/chat/completions", "{" + msgs + ",\"max_tokens\":-1}"), 400, "'max_tokens'");
  expect_error(s.post("/v1/chat/completions", "{" + msgs + ",\"max_tokens\":101}"), 400, "server.max_tokens_cap");
  expect_error(s.post("/v1/chat/completions", "{" + msgs + ",\"model\":\"gpt-4o\"}"), 404,
               "model 'gpt-4o' does not exist");
  expect_error(s.post("/v1/chat/completions", R"({"messages":[]})"), 400, "'messages' must not be empty");
  expect_error(s.post("/v1/chat/completions", "{" + msgs + ",\"n\":3}"), 400, "'n' must be 1");
  expect_error(s.post("/v1/completions", R"({"prompt":[1,9999]})"), 400, "prompt[1] = 9999 is not a token id");
  // A prompt longer than the context (64 positions here): both numbers in the message.
  std::string long_prompt;
  for (int i = 0; i < 100; ++i) long_prompt += "1,";
  long_prompt.pop_back();
  expect_error(s.post("/v1/completions", "{\"prompt\":[" + long_prompt + "]}"), 400,
               "the prompt has 100 tokens but the context holds 64");
  // A text that cannot fit is refused before it is tokenized (no token spans more bytes than the longest token).
  const std::string words(3000, 'a');
  expect_error(s.post("/v1/completions", "{\"prompt\":\"" + words + "\"}"), 400, "the prompt is at least");
  expect_error(s.post("/v1/chat/completions", R"({"messages":[{"role":"user","content":")" + words + "\"}]}"), 400,
               "but the context holds 64");
  // A NUL byte in what a message quotes does not cut the message short.
  expect_error(s.post("/v1/chat/completions", "{" + msgs + ",\"frob\\u0000nicate\":1}"), 400,
               "'frob\\0nicate'");
  // The decoder extension: an unknown decoder, and an option the decoder refuses.
  if (!host().find(PluginKind::Decoder, "diffusion"))
    expect_error(s.post("/v1/chat/completions", "{" + msgs + ",\"decoder\":{\"type\":\"diffusion\"}}"), 400,
                 "decoder 'diffusion' is not available");
  expect_error(s.post("/v1/chat/completions", "{" + msgs + ",\"decoder\":{\"type\":\"ar\",\"mode\":\"adaptive\"}}"),
               400, "decoder 'ar' has no option 'mode'");
  expect_error(s.post("/v1/chat/completions", "{" + msgs + ",\"decoder\":{\"type\":\"slow\",\"delay_ms\":\"x\"}}"),
               400, "delay_ms must be an integer");
  expect_error(s.post("/v1/chat/completions", std::string(5000, ' ') + "{" + msgs + "}"), 413,
               "larger than server.max_body_bytes = 4096");
  expect_error(s.client().Get("/v1/nothing"), 404, "no route for GET /v1/nothing");
  expect_error(s.client().Get("/v1/chat/completions"), 404, "no route for GET /v1/chat/completions");
  // After all that, the server still answers.
  EXPECT_EQ(s.post("/v1/completions", R"({"prompt":[1],"max_tokens":2})")->status, 200);
  EXPECT_EQ(metric(s, "bitrun_requests_running"), 0);
}

TEST_F(ServerTest, ApiKeysAndCors) {
  TestServer s({"server.api_keys=[k1, k2]", "server.cors_origins=[\"http://app.example\"]"});
  const std::string body = R"({"prompt":[1],"max_tokens":2})";
  expect_error(s.post("/v1/completions", body), 401, "missing API key");
  expect_error(s.post("/v1/completions", body, {{"Authorization", "Bearer nope"}}), 401, "invalid API key");
  expect_error(s.post("/v1/completions", body, {{"X-Api-Key", "k1x"}}), 401, "invalid API key");
  EXPECT_EQ(s.post("/v1/completions", body, {{"Authorization", "Bearer k2"}})->status, 200);
  EXPECT_EQ(s.post("/v1/completions", body, {{"X-Api-Key", "k1"}})->status, 200);
  EXPECT_EQ(s.client().Get("/health")->status, 200) << "health stays public";
  EXPECT_EQ(s.client().Get("/v1/models")->status, 200) << "the model list stays public";
  EXPECT_EQ(s.client().Get("/metrics")->status, 401);

  auto allowed = s.client().Get("/health", {{"Origin", "http://app.example"}});
  EXPECT_EQ(allowed->get_header_value("Access-Control-Allow-Origin"), "http://app.example");
  auto other = s.client().Get("/health", {{"Origin", "http://evil.example"}});
  EXPECT_FALSE(other->has_header("Access-Control-Allow-Origin"));
  // A browser's preflight needs no key and learns what it may send.
  auto pre = s.client().Options("/v1/chat/completions", {{"Origin", "http://app.example"},
                                                         {"Access-Control-Request-Method", "POST"},
                                                         {"Access-Control-Request-Headers", "authorization"}});
  ASSERT_TRUE(pre);
  EXPECT_EQ(pre->status, 204);
  EXPECT_EQ(pre->get_header_value("Access-Control-Allow-Origin"), "http://app.example");
  EXPECT_NE(pre->get_header_value("Access-Control-Allow-Methods").find("POST"), std::string::npos);
  EXPECT_EQ(pre->get_header_value("Access-Control-Allow-Headers"), "authorization");
}

TEST_F(ServerTest, AFullQueueAnswers429AndDisconnectsFreeTheirSequences) {
  TestServer s({"server.max_parallel=1", "server.max_queue=1"});
  const std::string slow = R"({"prompt":"x","max_tokens":2000,"decoder":{"type":"slow","delay_ms":10}})";
  RawClient first(s.port(), "/v1/completions", slow);
  RawClient second(s.port(), "/v1/completions", slow);
  ASSERT_TRUE(eventually([&] {
    return metric(s, "bitrun_requests_running") == 1 && metric(s, "bitrun_requests_waiting") == 1;
  }));
  expect_error(s.post("/v1/completions", R"({"prompt":[1],"max_tokens":2})"), 429, "the server is busy");
  EXPECT_EQ(metric(s, "bitrun_requests_rejected_total"), 1);
  // Closing the connections cancels both (a non-streamed request too) and frees their sequences.
  first.close();
  second.close();
  ASSERT_TRUE(eventually([&] {
    return metric(s, "bitrun_requests_running") == 0 && metric(s, "bitrun_requests_waiting") == 0;
  })) << "disconnected requests must not keep decoding";
  EXPECT_EQ(metric(s, "bitrun_requests_cancelled_total"), 2);
  EXPECT_LT(metric(s, "bitrun_generated_tokens_total"), 1000) << "cancelled long before max_tokens";
  EXPECT_EQ(s.post("/v1/completions", R"({"prompt":[1],"max_tokens":2})")->status, 200);
}

TEST_F(ServerTest, AStreamingClientThatLeavesIsCancelled) {
  TestServer s;
  RawClient c(s.port(), "/v1/chat/completions",
              R"({"messages":[{"role":"user","content":"x"}],"max_tokens":2000,"stream":true,
                  "decoder":{"type":"slow","delay_ms":10}})");
  const std::string got = c.read_until("{\"content\":\"");
  EXPECT_NE(got.find("text/event-stream"), std::string::npos) << got;
  EXPECT_EQ(metric(s, "bitrun_requests_running"), 1);
  c.close();
  ASSERT_TRUE(eventually([&] { return metric(s, "bitrun_requests_running") == 0; }));
  EXPECT_EQ(metric(s, "bitrun_requests_cancelled_total"), 1);
  EXPECT_EQ(s.scheduler().stats().running, 0u);
}

// The second request of a keep-alive connection finds its socket again (the handler remembers the one its thread
// found for the first) and is cancelled when the client leaves.
TEST_F(ServerTest, AKeepAliveConnectionsLaterRequestIsCancelledWhenItsClientLeaves) {
  TestServer s;
  httplib::Client c("127.0.0.1", s.port());
  c.set_keep_alive(true);
  auto first = c.Post("/v1/completions", R"({"prompt":[1],"max_tokens":2})", "application/json");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 200);
  std::thread second([&] {
    c.Post("/v1/completions", R"({"prompt":"x","max_tokens":2000,"decoder":{"type":"slow","delay_ms":10}})",
           "application/json");
  });
  ASSERT_TRUE(eventually([&] { return metric(s, "bitrun_requests_running") == 1; }));
  c.stop();   // closes the connection under the waiting request
  second.join();
  ASSERT_TRUE(eventually([&] { return metric(s, "bitrun_requests_running") == 0; }))
      << "the keep-alive request must be cancelled";
  EXPECT_EQ(metric(s, "bitrun_requests_cancelled_total"), 1);
}

TEST_F(ServerTest, RequestsThatOutliveTheTimeoutAreCancelled) {
  TestServer s({"server.request_timeout_s=1"});
  const auto start = std::chrono::steady_clock::now();
  expect_error(s.post("/v1/completions", R"({"prompt":"x","max_tokens":2000,"decoder":{"type":"slow"}})"), 503,
               "server.request_timeout_s");
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(took, 0.9);
  EXPECT_LT(took, 5.0);
  // Streamed: the stream ends with an error event instead of [DONE].
  auto r = s.post("/v1/completions", R"({"prompt":"x","max_tokens":2000,"stream":true,"decoder":{"type":"slow"}})");
  const auto events = sse_events(r->body);
  ASSERT_FALSE(events.empty());
  EXPECT_NE(events.back().find("\"error\""), std::string::npos) << events.back();
  EXPECT_NE(events.back().find("request_timeout_s"), std::string::npos);
  EXPECT_TRUE(eventually([&] { return metric(s, "bitrun_requests_running") == 0; }));
  EXPECT_EQ(metric(s, "bitrun_requests_cancelled_total"), 2);
}

TEST_F(ServerTest, ConcurrentClientsShareStepsAndGetTheSameGreedyText) {
  TestServer s({"server.max_parallel=6"});
  const std::vector<std::string> prompts = {"Once upon a time", "The little dog", "Lily and Ben went", "One day",
                                            "Tom had a big", "The sun was"};
  auto body = [](const std::string& p, bool stream) {
    return "{\"prompt\":\"" + p + "\",\"max_tokens\":40" + (stream ? ",\"stream\":true" : "") + "}";
  };
  auto text_of = [](const httplib::Result& r) {
    if (!r || r->status != 200) return std::string("(failed)");
    if (r->get_header_value("Content-Type").find("event-stream") == std::string::npos)
      return Json::parse(r->body).find("choices")->as_array()[0].find("text")->as_string();
    std::string t;
    for (const auto& e : sse_events(r->body))
      if (e != "[DONE]") t += Json::parse(e).find("choices")->as_array()[0].find("text")->as_string();
    return t;
  };
  std::vector<std::string> alone;
  for (const auto& p : prompts) alone.push_back(text_of(s.post("/v1/completions", body(p, false))));

  const double steps_before = metric(s, "bitrun_decode_steps_total");
  std::vector<std::future<std::string>> together;
  for (std::size_t i = 0; i < prompts.size(); ++i)
    together.push_back(std::async(std::launch::async, [&, i] {
      return text_of(s.post("/v1/completions", body(prompts[i], i % 2 == 1)));   // streamed and not, mixed
    }));
  for (std::size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(together[i].get(), alone[i]) << prompts[i];
  const double steps = metric(s, "bitrun_decode_steps_total") - steps_before;
  EXPECT_LT(steps, 6 * 40) << "concurrent requests must share forward steps";
}

TEST_F(ServerTest, AnswersLoadingUntilTheModelIsReady) {
  TestServer s({}, /*listen_only=*/true);
  expect_error(s.client().Get("/health"), 503, "loading");
  expect_error(s.client().Get("/v1/models"), 503, "loading");
  expect_error(s.post("/v1/completions", R"({"prompt":[1]})"), 503, "loading");
  s.ready();
  EXPECT_EQ(s.client().Get("/health")->status, 200);
}

TEST_F(ServerTest, StopEndsInFlightStreamsAndServeReturns) {
  TestServer s({"server.shutdown_grace_s=0"});
  auto pending = std::async(std::launch::async, [&] {
    return s.post("/v1/completions", R"({"prompt":"x","max_tokens":2000,"stream":true,"decoder":{"type":"slow"}})");
  });
  ASSERT_TRUE(eventually([&] { return s.scheduler().stats().running == 1; }));
  EXPECT_EQ(s.stop(), 0);
  expect_ended_by_shutdown(pending.get());
}

// Bodies are bounded however they are framed: a chunked body past server.max_body_bytes is refused (413) without
// being buffered, and a request framed two ways is refused before its body is read (400).
TEST_F(ServerTest, ChunkedBodiesAreBoundedAndAmbiguousFramingRefused) {
  TestServer s({"server.max_body_bytes=100000"});
  const std::string head = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
  {
    RawClient c(s.port(), head + "Transfer-Encoding: chunked\r\n\r\n");
    const std::string chunk = "10000\r\n" + std::string(0x10000, ' ') + "\r\n";   // 64 KiB of whitespace
    for (int i = 0; i < 64 && c.send(chunk); ++i) {
    }
    const std::string got = c.read_until("\r\n\r\n");
    EXPECT_EQ(got.rfind("HTTP/1.1 413", 0), 0u) << got.substr(0, 200);
  }
  {   // a small chunked body is read whole and served
    const std::string body = R"({"prompt":[1],"max_tokens":2})";
    RawClient c(s.port(), head + "Transfer-Encoding: Chunked\r\n\r\n5\r\n" + body.substr(0, 5) + "\r\n" +
                              [&] {
                                char size[16];
                                std::snprintf(size, sizeof size, "%zx", body.size() - 5);
                                return std::string(size);
                              }() +
                              "\r\n" + body.substr(5) + "\r\n0\r\n\r\n");
    const std::string got = c.read_until("\"choices\"");
    EXPECT_EQ(got.rfind("HTTP/1.1 200", 0), 0u) << got.substr(0, 200);
  }
  for (const std::string framing : {"Content-Length: 10\r\nTransfer-Encoding: chunked\r\n",
                                    "Transfer-Encoding: gzip\r\n"}) {
    RawClient c(s.port(), head + framing + "\r\n");
    const std::string got = c.read_until("}");
    EXPECT_EQ(got.rfind("HTTP/1.1 400", 0), 0u) << got.substr(0, 200);
    EXPECT_NE(got.find("Transfer-Encoding"), std::string::npos) << got;
  }
  EXPECT_EQ(s.post("/v1/completions", R"({"prompt":[1],"max_tokens":2})")->status, 200);
}

// Slow clients (a request head sent a byte at a time) each hold a connection thread; the pool grows past
// server.http_threads for them, so /health still answers, and oversized heads are refused (431).
TEST_F(ServerTest, SlowClientsDoNotStarveHealthAndHugeHeadsAreRefused) {
  TestServer s({"server.max_parallel=1", "server.max_queue=1", "server.max_connections=200"});   // 6 threads
  std::vector<std::unique_ptr<RawClient>> slow;
  for (int i = 0; i < 40; ++i)
    slow.push_back(std::make_unique<RawClient>(s.port(), "POST /v1/completions HTTP/1.1\r\nHost: x\r\n"));
  std::this_thread::sleep_for(200ms);
  httplib::Client c("127.0.0.1", s.port());
  c.set_read_timeout(2, 0);
  c.set_connection_timeout(2, 0);
  auto health = c.Get("/health");
  ASSERT_TRUE(health) << "/health did not answer while 40 slow clients held connections";
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(s.post("/v1/completions", R"({"prompt":[1],"max_tokens":2})")->status, 200);
  slow.clear();
  std::string many = "GET /health HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 150; ++i) many += "X-Header-" + std::to_string(i) + ": v\r\n";
  RawClient heads(s.port(), many + "\r\n");
  const std::string got = heads.read_until("}");
  EXPECT_EQ(got.rfind("HTTP/1.1 431", 0), 0u) << got.substr(0, 200);
  EXPECT_NE(got.find("at most 100 headers"), std::string::npos) << got;
}

// A client that trickles its request (each byte within httplib's per-read timeout) is cut at
// server.request_read_timeout_s, head or body; a request that takes longer than that to answer is not, and the
// cut connections are counted in /metrics.
TEST_F(ServerTest, TrickledRequestsAreClosedAtTheReadDeadline) {
  TestServer s({"server.request_read_timeout_s=1"});
  auto seconds_until_closed = [](RawClient& c) {
    const auto start = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - start < 8s) {
      if (c.closed_by_peer() || !c.send("a")) break;
      std::this_thread::sleep_for(100ms);
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  RawClient head(s.port(), "POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ");
  RawClient body(s.port(), "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n");
  const double head_closed = seconds_until_closed(head);
  EXPECT_GT(head_closed, 0.6);   // the deadline is met within a quarter of itself (plus the 100 ms polling)
  EXPECT_LT(head_closed, 2.5) << "a trickled head was not cut at the 1 s deadline";
  EXPECT_LT(seconds_until_closed(body), 2.5) << "a trickled body was not cut at the 1 s deadline";
  // Answering takes ~2 s here, twice the deadline: the request was read, so it runs to the end.
  const auto slow =
      s.post("/v1/completions", R"({"prompt":"x","max_tokens":20,"decoder":{"type":"slow","delay_ms":100}})");
  ASSERT_TRUE(slow);
  EXPECT_EQ(slow->status, 200) << slow->body;
  EXPECT_EQ(metric(s, "bitrun_http_connections_dropped_total"), 2);
}

// Responses and stream chunks carry bitrun's decoding statistics (the chat page shows them live), and /v1/models
// the model's context, architecture and backend.
TEST_F(ServerTest, ResponsesCarryDecodingStatisticsAndModelsTheirFacts) {
  TestServer s;
  auto whole = s.post("/v1/completions", R"({"prompt":"Once upon a time","max_tokens":8})");
  ASSERT_EQ(whole->status, 200);
  const Json stats = *Json::parse(whole->body).find("bitrun");
  EXPECT_EQ(stats.find("tokens")->as_int(), 8);
  EXPECT_GE(stats.find("forwards")->as_int(), 8);   // the prompt's forward and one per token (AR)
  EXPECT_GT(stats.find("rows")->as_int(), stats.find("forwards")->as_int());   // the prompt's rows too
  EXPECT_GT(stats.find("tokens_per_forward")->as_double(), 0.0);
  EXPECT_LE(stats.find("tokens_per_forward")->as_double(), 1.0);
  auto streamed = s.post("/v1/chat/completions",
                         R"({"messages":[{"role":"user","content":"Hi"}],"max_tokens":6,"stream":true})");
  const auto events = sse_events(streamed->body);
  ASSERT_GE(events.size(), 3u);
  std::int64_t last_tokens = 0;
  for (std::size_t i = 1; i + 1 < events.size(); ++i) {   // every chunk after the role chunk
    const Json e = Json::parse(events[i]);
    ASSERT_TRUE(e.find("bitrun")) << events[i];
    const std::int64_t tokens = e.find("bitrun")->find("tokens")->as_int();
    EXPECT_GE(tokens, last_tokens) << "counts only grow";
    last_tokens = tokens;
  }
  EXPECT_EQ(last_tokens, 6);
  const Json model = Json::parse(s.client().Get("/v1/models")->body).find("data")->as_array()[0];
  const Json* info = model.find("bitrun");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->find("context_length")->as_int(), 2048);   // stories260K's (its training context)
  EXPECT_EQ(info->find("architecture")->as_string(), "llama");
  EXPECT_FALSE(info->find("backend")->as_string().empty());
}

// GET / is the chat page: HTML compiled into the plugin, served while the model loads and without an API key (the
// page sends the key with its API calls), with a policy that lets it load nothing from elsewhere.
TEST_F(ServerTest, TheChatPageIsServedAtTheRoot) {
  TestServer s({"server.api_keys=[k1]"}, /*listen_only=*/true);
  auto page = s.client().Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(page->get_header_value("Content-Security-Policy").find("default-src 'none'"), std::string::npos);
  EXPECT_EQ(page->body.rfind("<!doctype html>", 0), 0u);
  EXPECT_NE(page->body.find("/v1/chat/completions"), std::string::npos);
  EXPECT_EQ(page->body.find("http://"), std::string::npos) << "the page must not load anything from the network";
  EXPECT_EQ(page->body.find("https://"), std::string::npos);
  s.ready();
  EXPECT_EQ(s.client().Get("/")->body, page->body);
  EXPECT_EQ(s.post("/v1/completions", R"({"prompt":[1],"max_tokens":2})")->status, 401);
}

// A graceful stop (SIGTERM): new requests and /health get 503 at once, a request in flight runs to its end within
// server.shutdown_grace_s, and serve() returns 0.
TEST_F(ServerTest, StopLetsRequestsInFlightFinishWithinTheGrace) {
  TestServer s({"server.shutdown_grace_s=30"});
  auto pending = std::async(std::launch::async, [&] {
    return s.post("/v1/completions",
                  R"({"prompt":"x","max_tokens":40,"stream":true,"decoder":{"type":"slow","delay_ms":25}})");
  });
  ASSERT_TRUE(eventually([&] { return s.scheduler().stats().running == 1; }));
  const int port = s.port();
  auto stopped = std::async(std::launch::async, [&] { return s.stop(); });
  httplib::Client c("127.0.0.1", port);
  ASSERT_TRUE(eventually([&] {
    auto h = c.Get("/health");
    return h && h->status == 503;
  })) << "a draining server must leave the load balancer";
  expect_error(c.Post("/v1/completions", R"({"prompt":[1],"max_tokens":2})", "application/json"), 503,
               "shutting down");
  auto r = pending.get();
  ASSERT_TRUE(r);
  const auto events = sse_events(r->body);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.back(), "[DONE]") << "the request in flight must finish, not be cancelled";
  EXPECT_NE(events[events.size() - 2].find("\"finish_reason\":\"length\""), std::string::npos)
      << events[events.size() - 2];
  EXPECT_EQ(stopped.get(), 0);
}

// ... and what still runs when the grace ends is cancelled and answered.
TEST_F(ServerTest, StopCancelsWhatOutlivesTheGrace) {
  TestServer s({"server.shutdown_grace_s=1"});
  auto pending = std::async(std::launch::async, [&] {
    return s.post("/v1/completions", R"({"prompt":"x","max_tokens":2000,"stream":true,"decoder":{"type":"slow"}})");
  });
  ASSERT_TRUE(eventually([&] { return s.scheduler().stats().running == 1; }));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(s.stop(), 0);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(took, 0.9);
  EXPECT_LT(took, 10.0);
  expect_ended_by_shutdown(pending.get());
}

// Latency histograms in Prometheus' shape: cumulative buckets ending in +Inf, _sum and _count.
TEST_F(ServerTest, MetricsCarryLatencyHistograms) {
  TestServer s;
  ASSERT_EQ(s.post("/v1/completions", R"({"prompt":[1],"max_tokens":3})")->status, 200);
  ASSERT_EQ(s.post("/v1/completions", R"({"prompt":[1],"max_tokens":3})")->status, 200);
  const std::string body = s.client().Get("/metrics")->body;
  for (const char* name : {"bitrun_time_to_first_token_seconds", "bitrun_queue_wait_seconds",
                           "bitrun_request_duration_seconds"}) {
    EXPECT_NE(body.find(std::string("# TYPE ") + name + " histogram"), std::string::npos) << name;
    EXPECT_NE(body.find(std::string(name) + "_count{model=\"stories260K\"} 2"), std::string::npos) << body;
    EXPECT_NE(body.find(std::string(name) + "_bucket{model=\"stories260K\",le=\"+Inf\"} 2"), std::string::npos);
    EXPECT_NE(body.find(std::string(name) + "_bucket{model=\"stories260K\",le=\"120\"} 2"), std::string::npos);
  }
  EXPECT_GT(s.scheduler().stats().time_to_first_token.sum(), 0.0);
}

// log.format json: one JSON object per request with its method, path, status and duration.
TEST_F(ServerTest, JsonLogsOneLinePerRequest) {
  TestServer s;
  const auto level = spdlog::get_level();
  set_log_format(LogFormat::Json);
  set_log_level(spdlog::level::info);
  testing::internal::CaptureStderr();
  // One keep-alive connection: its thread writes a request's log line before it reads the next request, so once
  // the last answer is here, the two lines before it are written.
  httplib::Client c("127.0.0.1", s.port());
  c.set_keep_alive(true);
  const auto tokenized = c.Post("/tokenize", R"({"content":"hi \"there\""})", "application/json");
  const auto missing = c.Get("/nowhere");
  const auto health = c.Get("/health");
  const std::string err = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(tokenized && missing && health);
  EXPECT_EQ(tokenized->status, 200);
  set_log_level(level);
  set_log_format(LogFormat::Text);
  // By path: a request's line follows its response, so two quick requests' lines may come in either order, and
  // the readiness polls' /health lines may still arrive.
  std::map<std::string, Json> requests;
  std::istringstream lines(err);
  for (std::string line; std::getline(lines, line);) {
    const Json j = Json::parse(line);   // every line is one JSON object
    if (j.find("message")->as_string() == "request" && j.find("path")->as_string() != "/health")
      requests[j.find("path")->as_string()] = j;
  }
  ASSERT_EQ(requests.size(), 2u) << err;
  const Json& tokenize = requests.at("/tokenize");
  EXPECT_EQ(tokenize.find("method")->as_string(), "POST");
  EXPECT_EQ(tokenize.find("status")->as_int(), 200);
  EXPECT_EQ(tokenize.find("component")->as_string(), "http");
  EXPECT_GE(tokenize.find("duration_ms")->as_double(), 0.0);
  EXPECT_EQ(requests.at("/nowhere").find("status")->as_int(), 404);
}

}  // namespace
}  // namespace bitrun
