// The endpoints, once the model is loaded. Each handler validates its input (ApiError naming the problem),
// works through the ServeContext (scheduler, decoders, tokenizer) and writes an OpenAI-shaped response; the
// frontend's route wrapper turns every exception into an error response.
#pragma once

#include <httplib.h>

#include "bitrun/plugin/frontend.hpp"
#include "metrics.hpp"
#include "request_parser.hpp"
#include "settings.hpp"

namespace bitrun::http {

class Api {
 public:
  Api(ServeContext& context, const ServerSettings& settings, const HttpCounters& counters);

  void health(const httplib::Request& req, httplib::Response& res) const;
  void models(const httplib::Request& req, httplib::Response& res) const;
  void model(const httplib::Request& req, httplib::Response& res) const;   // /v1/models/{id}
  void generate(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) const;
  void tokenize(const httplib::Request& req, httplib::Response& res) const;
  void detokenize(const httplib::Request& req, httplib::Response& res) const;
  void metrics(const httplib::Request& req, httplib::Response& res) const;

 private:
  ServeContext& ctx_;
  const ServerSettings& settings_;
  const HttpCounters& counters_;
};

// Sends `body` as JSON with `status`.
void send_json(httplib::Response& res, int status, const std::string& body);

}  // namespace bitrun::http
