// libFuzzer target: the HTTP frontend's request body parsing (JSON, then the OpenAI request validation) on
// arbitrary bytes, for both endpoints (scripts/fuzz.sh builds and runs it). A hostile body may only produce an
// ApiError or bitrun::Error (a 4xx); a crash, hang or sanitizer report is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "api_error.hpp"
#include "bitrun/base/error.hpp"
#include "bitrun/engine/sampler.hpp"
#include "bitrun/base/json.hpp"
#include "request_parser.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  const bitrun::http::GenerationLimits limits{4096, 256};
  for (auto endpoint : {bitrun::http::Endpoint::Chat, bitrun::http::Endpoint::Completion}) {
    try {
      const bitrun::http::GenerationRequest r =
          bitrun::http::parse_generation_request(bitrun::http::parse_body(body), endpoint, limits);
      bitrun::SamplingParams params;
      bitrun::http::apply_sampling(r, params);
    } catch (const bitrun::http::ApiError&) {
    } catch (const bitrun::Error&) {
    }
  }
  try {
    (void)bitrun::http::parse_tokenize_request(bitrun::http::parse_body(body));
  } catch (const bitrun::http::ApiError&) {
  } catch (const bitrun::Error&) {
  }
  try {
    (void)bitrun::http::parse_detokenize_request(bitrun::http::parse_body(body));
  } catch (const bitrun::http::ApiError&) {
  } catch (const bitrun::Error&) {
  }
  try {   // the JSON value itself, written back out and read again: the same document
    const bitrun::Json j = bitrun::http::parse_body(body);
    if (bitrun::Json::parse(j.dump()).dump() != j.dump()) __builtin_trap();
  } catch (const bitrun::http::ApiError&) {
  } catch (const bitrun::Error&) {
  }
  return 0;
}
