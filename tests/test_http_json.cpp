// The HTTP frontend's strict JSON and its request validation, without a server: what RFC 8259 forbids is refused
// with the byte offset; numbers keep their text; output is always valid UTF-8; every request field is checked for
// type and range and a 400 names it.
#include <gtest/gtest.h>

#include "api_error.hpp"
#include "bitrun/base/json.hpp"
#include "request_parser.hpp"

namespace bitrun::http {
namespace {

std::string parse_error(const std::string& text) {
  try {
    Json::parse(text);
  } catch (const JsonError& e) {
    return e.what();
  }
  return "(parsed)";
}

TEST(Json, ParsesEveryKindOfValue) {
  const Json v = Json::parse(R"( {"a": [1, -2.5e3, true, false, null], "s": "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00",
                                  "n": {"deep": {}} } )");
  ASSERT_TRUE(v.is_object());
  const auto& a = v.find("a")->as_array();
  ASSERT_EQ(a.size(), 5u);
  EXPECT_EQ(a[0].as_int(), 1);
  EXPECT_DOUBLE_EQ(a[1].as_double(), -2500.0);
  EXPECT_FALSE(a[1].is_integer());
  EXPECT_TRUE(a[2].as_bool());
  EXPECT_TRUE(a[4].is_null());
  EXPECT_EQ(v.find("s")->as_string(), "x\"\\/\b\f\n\r\t\xC3\xA9\xF0\x9F\x98\x80");
  EXPECT_TRUE(v.find("n")->find("deep")->is_object());
  EXPECT_EQ(v.find("missing"), nullptr);
}

TEST(Json, RefusesWhatTheRfcForbidsAndSaysWhere) {
  EXPECT_NE(parse_error("{\"a\":1,}").find("expected a string key at byte 7"), std::string::npos);
  EXPECT_NE(parse_error("[1,]").find("unexpected character ']'"), std::string::npos);
  EXPECT_NE(parse_error("{\"a\":1} x").find("unexpected text after the JSON value at byte 8"), std::string::npos);
  EXPECT_NE(parse_error("// c\n{}").find("unexpected character '/'"), std::string::npos);
  EXPECT_NE(parse_error("{'a':1}").find("expected a string key"), std::string::npos);
  EXPECT_NE(parse_error("01").find("unexpected text"), std::string::npos);
  EXPECT_NE(parse_error("1.").find("expected digits after '.'"), std::string::npos);
  EXPECT_NE(parse_error(".5").find("unexpected character '.'"), std::string::npos);
  EXPECT_NE(parse_error("+1").find("unexpected character '+'"), std::string::npos);
  EXPECT_NE(parse_error("NaN").find("unexpected character 'N'"), std::string::npos);
  EXPECT_NE(parse_error("1e400").find("number out of range"), std::string::npos);
  EXPECT_NE(parse_error("\"a\\x\"").find("bad escape '\\x'"), std::string::npos);
  EXPECT_NE(parse_error("\"\\ud800\"").find("unpaired high surrogate"), std::string::npos);
  EXPECT_NE(parse_error("\"\\udc00\"").find("unpaired low surrogate"), std::string::npos);
  EXPECT_NE(parse_error("\"a\nb\"").find("control character"), std::string::npos);
  EXPECT_NE(parse_error("\"\xC3\"").find("invalid UTF-8"), std::string::npos);
  EXPECT_NE(parse_error("\"\xC0\xAF\"").find("invalid UTF-8"), std::string::npos);   // overlong '/'
  EXPECT_NE(parse_error("\"\xED\xA0\x80\"").find("invalid UTF-8"), std::string::npos);   // encoded surrogate
  EXPECT_NE(parse_error("{\"a\":1,\"a\":2}").find("duplicate key \"a\""), std::string::npos);
  // Large objects keep their keys in a hash set: a duplicate far down is still found, and 100K keys parse.
  std::string big = "{";
  for (int i = 0; i < 100000; ++i) big += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":0";
  EXPECT_EQ(parse_error(big + "}"), "(parsed)");
  EXPECT_NE(parse_error(big + ",\"k17\":1}").find("duplicate key \"k17\""), std::string::npos);
  EXPECT_NE(parse_error(big + ",\"k3\":1}").find("duplicate key \"k3\""), std::string::npos);
  EXPECT_NE(parse_error("").find("unexpected end of input"), std::string::npos);
  EXPECT_NE(parse_error("[\"unterminated").find("unterminated string"), std::string::npos);
  EXPECT_NE(parse_error(std::string(65, '[') + std::string(65, ']')).find("nesting deeper than 64"), std::string::npos);
  EXPECT_EQ(parse_error(std::string(64, '[') + std::string(64, ']')), "(parsed)");
}

TEST(Json, WritesCompactValidUtf8AndKeepsNumberText) {
  Json o = Json::object();
  o["text"] = std::string("a\"b\\c\n\x01 \xE2\x82\xAC \xFF");   // one ill-formed byte at the end
  o["int"] = 42;
  o["float"] = -0.1f;
  o["double"] = 0.25;
  o["null"] = nullptr;
  o["list"] = Json(Json::Array{Json(true), Json("x")});
  EXPECT_EQ(o.dump(), "{\"text\":\"a\\\"b\\\\c\\n\\u0001 \xE2\x82\xAC \xEF\xBF\xBD\",\"int\":42,\"float\":-0.1,"
                      "\"double\":0.25,\"null\":null,\"list\":[true,\"x\"]}");
  EXPECT_EQ(Json::parse("0.90").number_text(), "0.90");
  EXPECT_EQ(Json(std::numeric_limits<double>::infinity()).dump(), "null");
  const std::string round = Json::parse(o.dump()).dump();
  EXPECT_EQ(round, o.dump());
  EXPECT_TRUE(valid_utf8("\xF0\x9F\x98\x80"));
  EXPECT_FALSE(valid_utf8("\xF0\x9F\x98"));
}

// The 400 message parse_generation_request gives for `body`, or "(ok)".
std::string refusal(const std::string& body, Endpoint e = Endpoint::Chat) {
  try {
    parse_generation_request(parse_body(body), e, GenerationLimits{100, 16});
  } catch (const ApiError& err) {
    EXPECT_EQ(err.status(), 400);
    return err.what();
  }
  return "(ok)";
}

const std::string kMsgs = R"("messages":[{"role":"user","content":"hi"}])";

TEST(RequestParser, ReadsEveryOpenAiField) {
  const std::string body = "{" + kMsgs + R"(,"model":"m","max_tokens":7,"temperature":0.5,"top_p":0.9,"top_k":5,
      "min_p":0.1,"seed":-3,"stop":["a","b"],"presence_penalty":0.5,"frequency_penalty":-0.5,"repeat_penalty":1.1,
      "n":1,"stream":true,"stream_options":{"include_usage":true},"logprobs":true,"top_logprobs":4,"user":"u",
      "decoder":{"type":"diffusion","mode":"adaptive","threshold":0.90,"flag":true},"tools":null,"echo":false})";
  const GenerationRequest r = parse_generation_request(parse_body(body), Endpoint::Chat, GenerationLimits{100, 16});
  EXPECT_EQ(*r.model, "m");
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_FLOAT_EQ(*r.temperature, 0.5f);
  EXPECT_EQ(*r.top_k, 5);
  EXPECT_EQ(*r.seed, static_cast<std::uint64_t>(-3));
  EXPECT_EQ(*r.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.logprobs, 4);
  EXPECT_EQ(r.decoder, "diffusion");
  EXPECT_EQ(r.decoder_options, (std::map<std::string, std::string>{{"flag", "true"}, {"mode", "adaptive"},
                                                                   {"threshold", "0.90"}}));
  SamplingParams p;
  apply_sampling(r, p);
  EXPECT_FLOAT_EQ(p.top_p, 0.9f);
  EXPECT_FLOAT_EQ(p.repeat_penalty, 1.1f);

  const GenerationRequest d = parse_generation_request(parse_body("{" + kMsgs + "}"), Endpoint::Chat,
                                                       GenerationLimits{100, 160});
  EXPECT_EQ(d.max_tokens, 100) << "the default is capped";
  EXPECT_EQ(d.logprobs, -1);
  EXPECT_EQ(d.messages.size(), 1u);

  const GenerationRequest c = parse_generation_request(
      parse_body(R"({"prompt":[1,2,3],"logprobs":2,"max_completion_tokens":null})"), Endpoint::Completion,
      GenerationLimits{100, 16});
  EXPECT_TRUE(c.prompt_is_tokens);
  EXPECT_EQ(c.prompt_tokens, (std::vector<std::int32_t>{1, 2, 3}));
  EXPECT_EQ(c.logprobs, 2);
  EXPECT_EQ(c.max_tokens, 16);
}

TEST(RequestParser, EveryRefusalNamesTheField) {
  EXPECT_NE(refusal("{").find("not valid JSON"), std::string::npos);
  EXPECT_NE(refusal("[]").find("must be a JSON object, got an array"), std::string::npos);
  EXPECT_NE(refusal("").find("body is empty"), std::string::npos);
  EXPECT_EQ(refusal("{}"), "'messages' is required");
  EXPECT_EQ(refusal(R"({"messages":[]})"), "'messages' must not be empty");
  EXPECT_EQ(refusal(R"({"messages":"hi"})"), "'messages' must be an array, got a string");
  EXPECT_EQ(refusal(R"({"messages":[{"role":"user"}]})"), "'messages[0].content' is required");
  EXPECT_EQ(refusal(R"({"messages":[{"content":"x"}]})"), "'messages[0].role' is required");
  EXPECT_NE(refusal(R"({"messages":[{"role":"tool","content":"x"}]})").find("'messages[0].role' is 'tool'"),
            std::string::npos);
  EXPECT_EQ(refusal(R"({"messages":[{"role":"user","content":"x","colour":1}]})"),
            "unknown field 'messages[0].colour'");
  EXPECT_NE(refusal(R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})").find("only text"),
            std::string::npos);
  EXPECT_EQ(refusal("{" + kMsgs + R"(,"colour":1})"), "unknown field 'colour'");
  EXPECT_EQ(refusal("{" + kMsgs + R"(,"tools":[{"type":"function"}]})"), "'tools' is not supported by this server");
  EXPECT_EQ(refusal("{" + kMsgs + R"(,"temperature":"hot"})"), "'temperature' must be a number, got a string");
  EXPECT_EQ(refusal("{" + kMsgs + R"(,"temperature":3})"), "'temperature' must be between 0 and 2, got 3");
  EXPECT_EQ(refusal("{" + kMsgs + R"(,"max_tokens":0})"), "'max_tokens' must be between 1 and 2147483647, got 0");
  EXPECT_EQ(refusal("{" + kMsgs + R"(,"max_tokens":-5})"), "'max_tokens' must be between 1 and 2147483647, got -5");
  EXPECT_EQ(refusal("{" + kMsgs + R"(,"max_tokens":1.5})"), "'max_tokens' must be an integer, got 1.5");
  EXPECT_EQ(refusal("{" + kMsgs + R"(,"max_tokens":101})"),
            "'max_tokens' is 101; this server allows at most 100 (server.max_tokens_cap)");
  EXPECT_NE(refusal("{" + kMsgs + R"(,"max_tokens":5,"max_completion_tokens":6})").find("disagree"),
            std::string::npos);
  EXPECT_EQ(refusal("{" + kMsgs + R"(,"n":2})"), "'n' must be 1: this server returns one choice per request");
  EXPECT_EQ(refusal("{" + kMsgs + R"(,"stream_options":{"include_usage":true}})"),
            "'stream_options' is only allowed when 'stream' is true");
  EXPECT_EQ(refusal("{" + kMsgs + R"(,"stream":true,"stream_options":{"x":1}})"),
            "unknown field 'stream_options.x'");
  EXPECT_EQ(refusal("{" + kMsgs + R"(,"top_logprobs":2})"), "'top_logprobs' requires 'logprobs': true");
  EXPECT_EQ(refusal("{" + kMsgs + R"(,"logprobs":true,"top_logprobs":21})"),
            "'top_logprobs' must be between 0 and 20, got 21");
  EXPECT_EQ(refusal("{" + kMsgs + R"(,"stop":[1]})"), "'stop[0]' must be a string, got a number");
  EXPECT_EQ(refusal("{" + kMsgs + R"(,"decoder":{"mode":[1]}})"),
            "'decoder.mode' must be a string, number or boolean, got an array");
  EXPECT_EQ(refusal("{" + kMsgs + R"(,"decoder":"ar"})"), "'decoder' must be an object, got a string");
  EXPECT_EQ(refusal(R"({"prompt":"x"})"), "unknown field 'prompt'");
  EXPECT_EQ(refusal(R"({"messages":[]})", Endpoint::Completion), "unknown field 'messages'");
  EXPECT_EQ(refusal(R"({})", Endpoint::Completion), "'prompt' is required");
  EXPECT_NE(refusal(R"({"prompt":["a","b"]})", Endpoint::Completion).find("several prompts"), std::string::npos);
  EXPECT_EQ(refusal(R"({"prompt":[1,-2]})", Endpoint::Completion),
            "'prompt[1]' must be between 0 and 2147483647, got -2");
  EXPECT_EQ(refusal(R"({"prompt":"x","logprobs":true})", Endpoint::Completion),
            "'logprobs' must be an integer, got a boolean");
}

TEST(RequestParser, TokenizeAndDetokenizeBodies) {
  const TokenizeRequest t = parse_tokenize_request(parse_body(R"({"content":"x","add_special":true,"with_pieces":true})"));
  EXPECT_EQ(t.content, "x");
  EXPECT_TRUE(t.add_special);
  EXPECT_TRUE(t.with_pieces);
  EXPECT_TRUE(t.parse_special);
  EXPECT_THROW(parse_tokenize_request(parse_body(R"({"text":"x"})")), ApiError);
  EXPECT_THROW(parse_tokenize_request(parse_body(R"({})")), ApiError);
  EXPECT_EQ(parse_detokenize_request(parse_body(R"({"tokens":[1,2]})")), (std::vector<std::int64_t>{1, 2}));
  EXPECT_THROW(parse_detokenize_request(parse_body(R"({"tokens":"1"})")), ApiError);
  EXPECT_THROW(parse_detokenize_request(parse_body(R"({"tokens":[1.5]})")), ApiError);
}

TEST(ApiErrorBody, HasOpenAisShape) {
  EXPECT_EQ(error_body(429, "busy"), R"({"error":{"message":"busy","type":"rate_limit_error","code":429}})");
  EXPECT_STREQ(error_type(400), "invalid_request_error");
  EXPECT_STREQ(error_type(401), "authentication_error");
  EXPECT_STREQ(error_type(404), "not_found_error");
  EXPECT_STREQ(error_type(413), "invalid_request_error");
  EXPECT_STREQ(error_type(500), "server_error");
  EXPECT_STREQ(error_type(503), "unavailable_error");
}

}  // namespace
}  // namespace bitrun::http
