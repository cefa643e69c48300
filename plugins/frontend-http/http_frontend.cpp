#include "http_frontend.hpp"

#include <sys/socket.h>

#include <cctype>
#include <charconv>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "api_error.hpp"
#include "chat_page.hpp"
#include "connection.hpp"
#include "connection_pool.hpp"
#include "bitrun/base/error.hpp"
#include "bitrun/base/log.hpp"
#include "bitrun/engine/scheduler.hpp"

namespace bitrun::http {
namespace {

// Request heads larger than this are refused with 431 (browsers and OpenAI clients send a few dozen headers).
constexpr std::size_t kMaxHeaders = 100, kMaxHeadBytes = 64 * 1024;

// When the request this server thread handles arrived (httplib runs a request on one thread, start to end).
thread_local std::chrono::steady_clock::time_point request_started{};

// One line per request: method, path, status, time, client address (log.format json makes it a JSON object).
void log_request(const httplib::Request& req, const httplib::Response& res) {
  std::vector<std::pair<std::string, LogValue>> fields = {
      {"method", req.method}, {"path", req.path}, {"status", std::int64_t{res.status}}, {"remote", req.remote_addr}};
  if (request_started != std::chrono::steady_clock::time_point{}) {
    fields.emplace_back("duration_ms",
                        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - request_started)
                            .count());
    request_started = {};
  }
  log_event("http", spdlog::level::info, "request", fields);
}

// Answers `status` and ends the connection: what is left of the request on it (an unread body, a head that was
// refused) must not be taken for the next request.
void refuse_and_close(httplib::Response& res, int status, const std::string& message) {
  res.set_header("Connection", "close");
  send_json(res, status, error_body(status, message));
}

// cpp-httplib 0.11.4 listens with a backlog of 5 connections, so a burst of clients overflows it whenever the accept
// loop falls a little behind, and each connection dropped there waits for its SYN to be resent (1 s on Linux): 200
// clients connecting at once saw 4-8 such waits. Calling listen() again on the bound socket raises the backlog
// (the kernel caps it at net.core.somaxconn). Returns false when the socket was not found.
bool raise_listen_backlog(int port) {
  for (int fd : open_descriptors()) {
    int listening = 0;
    socklen_t len = sizeof listening;
    std::string host;
    int bound = -1;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening &&
        local_endpoint(fd, host, bound) && bound == port)
      return ::listen(fd, SOMAXCONN) == 0;
  }
  return false;
}

}  // namespace

HttpFrontend::HttpFrontend(const Config& config)
    : settings_(read_settings(config)), access_(settings_.api_keys, settings_.cors_origins) {
  install_routes();
}

HttpFrontend::~HttpFrontend() { stop(); }

SchedulerOptions HttpFrontend::scheduler_options() const {
  SchedulerOptions options;
  options.max_parallel = settings_.max_parallel;
  options.max_queue = settings_.max_queue;
  return options;
}

void HttpFrontend::guarded(httplib::Response& res, const std::function<void(const Api&)>& body) {
  try {
    const Api* api = api_.load();
    bool stopping;
    {
      std::lock_guard lock(mu_);
      stopping = stopping_;
    }
    if (stopping) throw ApiError(503, "the server is shutting down");
    if (!api) throw ApiError(503, "the model is still loading; retry shortly");
    body(*api);
  } catch (const ApiError& e) {
    send_json(res, e.status(), error_body(e.status(), e.what()));
  } catch (const SchedulerFull& e) {
    send_json(res, 429, error_body(429, e.what()));
  } catch (const SchedulerStopped& e) {
    send_json(res, 503, error_body(503, e.what()));
  } catch (const Error& e) {
    // The core and the decoders throw bitrun::Error for input they refuse (a decoder option, a prompt).
    send_json(res, 400, error_body(400, e.what()));
  } catch (const std::exception& e) {
    logger("http")->error("internal error: {}", e.what());
    send_json(res, 500, error_body(500, std::string("internal error: ") + e.what()));
  } catch (...) {
    logger("http")->error("internal error (unknown exception)");
    send_json(res, 500, error_body(500, "internal error"));
  }
}

httplib::Server::Handler HttpFrontend::route(ApiHandler handler) {
  return [this, handler](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&](const Api& api) { (api.*handler)(req, res); });
  };
}

httplib::Server::Handler HttpFrontend::generation_route(Endpoint endpoint) {
  return [this, endpoint](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&](const Api& api) { api.generate(req, res, endpoint); });
  };
}

httplib::Server::HandlerWithContentReader HttpFrontend::post_route(httplib::Server::Handler handler) {
  return [this, handler](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
    httplib::Request with_body = req;
    // A declared length over the limit is refused unread (the body is skipped with the connection).
    const std::string declared = req.get_header_value("Content-Length");
    std::uint64_t length = 0;
    const auto parsed = std::from_chars(declared.data(), declared.data() + declared.size(), length);
    bool too_large = !declared.empty() && (parsed.ec == std::errc::result_out_of_range ||
                                           (parsed.ec == std::errc() && length > settings_.max_body_bytes));
    const bool complete = too_large || reader([&](const char* data, std::size_t length) {
      if (with_body.body.size() + length > settings_.max_body_bytes) {
        too_large = true;
        return false;   // stop reading: the rest of the body is never buffered
      }
      with_body.body.append(data, length);
      return true;
    });
    if (too_large)
      return refuse_and_close(res, 413, "the request body is larger than server.max_body_bytes = " +
                                            std::to_string(settings_.max_body_bytes) + " bytes");
    if (!complete)
      return refuse_and_close(res, 400, "the request body could not be read (malformed chunked encoding?)");
    if (read_deadline_) read_deadline_->request_read(req);
    handler(with_body, res);
  };
}

void HttpFrontend::install_routes() {
  // More threads than admitted requests, so a full queue is answered 429 instead of leaving connections unread.
  const std::size_t threads = settings_.http_threads, max_connections = settings_.max_connections;
  server_.new_task_queue = [threads, max_connections] { return new ConnectionPool(threads, max_connections); };
  server_.set_payload_max_length(settings_.max_body_bytes);

  server_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    request_started = std::chrono::steady_clock::now();
    // A request head beyond what any client sends is refused before routing (httplib has read it already, but
    // nothing more is done with it).
    std::size_t head_bytes = req.path.size();
    for (const auto& [name, value] : req.headers) head_bytes += name.size() + value.size() + 4;
    if (req.headers.size() > kMaxHeaders || head_bytes > kMaxHeadBytes) {
      refuse_and_close(res, 431, "the request has " + std::to_string(req.headers.size()) + " headers of " +
                                     std::to_string(head_bytes) + " bytes (at most " + std::to_string(kMaxHeaders) +
                                     " headers, " + std::to_string(kMaxHeadBytes) + " bytes)");
      return httplib::Server::HandlerResponse::Handled;
    }
    // A body framed two ways (or in a coding bitrun does not read) is refused before any of it is read: a proxy
    // and this server could otherwise disagree on where the request ends (request smuggling).
    if (req.has_header("Transfer-Encoding")) {
      std::string coding = req.get_header_value("Transfer-Encoding");
      for (char& c : coding) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      const char* problem = nullptr;
      if (req.has_header("Content-Length")) problem = "both Content-Length and Transfer-Encoding";
      else if (req.get_header_value_count("Transfer-Encoding") != 1 || coding != "chunked")
        problem = "a Transfer-Encoding other than a single 'chunked'";
      if (problem) {
        refuse_and_close(res, 400, std::string("the request has ") + problem);
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    // A request without a body has arrived in full: no read deadline while it is handled (one with a body: once
    // post_route has read it).
    const bool has_body = req.has_header("Transfer-Encoding") ||
                          (req.has_header("Content-Length") && req.get_header_value("Content-Length") != "0");
    if (!has_body && read_deadline_) read_deadline_->request_read(req);
    access_.add_cors_headers(req, res);
    if (access_.answer_preflight(req, res)) return httplib::Server::HandlerResponse::Handled;
    if (auto problem = access_.check_key(req)) {
      res.set_header("WWW-Authenticate", "Bearer");
      send_json(res, 401, error_body(401, *problem));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Statuses httplib decides itself (no route, body too large, unreadable request) get an OpenAI error body.
  server_.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req,
                                                                        httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string message;
    switch (res.status) {
      case 404: message = "no route for " + req.method + " " + req.path; break;
      case 413:
        message = "the request body is larger than server.max_body_bytes = " +
                  std::to_string(settings_.max_body_bytes) + " bytes";
        break;
      default: message = "the request could not be handled (HTTP " + std::to_string(res.status) + ")";
    }
    send_json(res, res.status, error_body(res.status, message));
    return httplib::Server::HandlerResponse::Handled;
  }));
  // Last resort: the route wrapper already catches everything a handler throws.
  server_.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what += std::string(": ") + e.what();
    } catch (...) {
    }
    send_json(res, 500, error_body(500, what));
  });
  server_.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    if (read_deadline_) read_deadline_->response_written(req);
    counters_.count(res.status);
    log_request(req, res);
  });

  server_.Get("/", [](const httplib::Request&, httplib::Response& res) { send_chat_page(res); });
  server_.Get("/health", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&](const Api& api) { api.health(req, res); });
  });
  server_.Get("/v1/models", route(&Api::models));
  server_.Get(R"(/v1/models/(.+))", route(&Api::model));
  server_.Post("/v1/chat/completions", post_route(generation_route(Endpoint::Chat)));
  server_.Post("/v1/completions", post_route(generation_route(Endpoint::Completion)));
  server_.Post("/tokenize", post_route(route(&Api::tokenize)));
  server_.Post("/detokenize", post_route(route(&Api::detokenize)));
  server_.Get("/metrics", route(&Api::metrics));
}

int HttpFrontend::listen() {
  std::lock_guard lock(mu_);
  if (port_ >= 0) return port_;
  if (stopping_) throw Error("the HTTP server was stopped before it listened");
  errno = 0;
  const int port = settings_.port == 0 ? server_.bind_to_any_port(settings_.host)
                                       : (server_.bind_to_port(settings_.host, settings_.port) ? settings_.port : -1);
  if (port < 0)
    throw Error("cannot listen on " + settings_.host + ":" + std::to_string(settings_.port) + ": " +
                (errno ? std::strerror(errno) : "bind failed") + " (server.host / server.port)");
  port_ = port;
  if (!raise_listen_backlog(port)) logger("http")->warn("could not raise the listen backlog of port {}", port);
  const auto read_timeout = settings_.request_read_timeout;
  read_deadline_ = std::make_unique<ReadDeadline>(port, read_timeout, [this, read_timeout](const std::string& peer) {
    counters_.count_dropped_connection();
    logger("http")->warn("closed the connection from {}: no complete request within server.request_read_timeout_s "
                         "= {} s",
                         peer, read_timeout.count());
  });
  listener_ = std::thread([this] { server_.listen_after_bind(); });
  // stop() only takes effect once the accept loop runs: wait for it.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!server_.is_running() && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  logger("http")->info("listening on http://{}:{} ({} to {} HTTP threads)", settings_.host, port_,
                       settings_.http_threads, settings_.max_connections);
  return port_;
}

int HttpFrontend::serve(ServeContext& context) {
  listen();
  std::unique_lock lock(mu_);
  if (stopping_) return 0;
  if (!settings_.model_id.empty()) context.model_id = settings_.model_id;
  context_ = &context;
  api_owner_ = std::make_unique<Api>(context, settings_, counters_);
  api_ = api_owner_.get();
  logger("http")->info("serving model '{}' on http://{}:{}", context.model_id, settings_.host, port_);
  cv_.wait(lock, [this] { return stopped_; });
  return 0;
}

void HttpFrontend::stop() {
  ServeContext* context;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    context = context_;
  }
  // New requests get 503 from here on (and /health too, so a load balancer stops sending). Those in flight may
  // finish within server.shutdown_grace_s; what still runs then ends now (503 or an error event), so the
  // connection threads can be joined.
  if (context) {
    const auto deadline = std::chrono::steady_clock::now() + settings_.shutdown_grace;
    if (!context->scheduler.drain(deadline))
      logger("http")->warn("requests still running after server.shutdown_grace_s = {} s: cancelling them",
                           settings_.shutdown_grace.count());
    context->scheduler.shutdown();
  }
  server_.stop();
  if (listener_.joinable()) listener_.join();
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
  }
  cv_.notify_all();
  logger("http")->info("stopped");
}

}  // namespace bitrun::http
