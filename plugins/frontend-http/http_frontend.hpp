// The HTTP frontend: a cpp-httplib server with the OpenAI-compatible routes. It listens before the model is
// loaded (every route but /health then answers 503 "loading"), serves once it has a ServeContext, and on stop()
// shuts the scheduler down (in-flight requests end with 503 or an error event), stops accepting and joins its
// threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include <httplib.h>

#include "access.hpp"
#include "api.hpp"
#include "bitrun/plugin/frontend.hpp"
#include "metrics.hpp"
#include "read_deadline.hpp"
#include "settings.hpp"

namespace bitrun::http {

class HttpFrontend final : public Frontend {
 public:
  explicit HttpFrontend(const Config& config);
  ~HttpFrontend() override;

  std::string name() const override { return "http"; }
  SchedulerOptions scheduler_options() const override;
  int listen() override;
  int serve(ServeContext& context) override;
  void stop() override;

 private:
  using ApiHandler = void (Api::*)(const httplib::Request&, httplib::Response&) const;
  void install_routes();
  // A route handler that needs the model: 503 while loading or stopping, every exception turned into an error.
  httplib::Server::Handler route(ApiHandler handler);
  httplib::Server::Handler generation_route(Endpoint endpoint);
  // A POST route: the body is read here, up to server.max_body_bytes however it is framed (Content-Length or
  // chunked; httplib bounds only the former), then `handler` runs on the request with its body.
  httplib::Server::HandlerWithContentReader post_route(httplib::Server::Handler handler);
  void guarded(httplib::Response& res, const std::function<void(const Api&)>& body);

  ServerSettings settings_;
  AccessPolicy access_;
  HttpCounters counters_;
  httplib::Server server_;
  std::unique_ptr<ReadDeadline> read_deadline_;   // from listen() on (it needs the port)
  std::thread listener_;
  int port_ = -1;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false, stopped_ = false;
  ServeContext* context_ = nullptr;
  std::unique_ptr<Api> api_owner_;
  std::atomic<const Api*> api_{nullptr};   // set once the model is ready
};

}  // namespace bitrun::http
