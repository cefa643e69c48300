// `bitrun serve`: the OpenAI-compatible HTTP server (frontend plugin `http`). It listens first, so /health says
// "loading" (503) while the model loads, then serves every request through one scheduler (continuous batching).
// SIGINT/SIGTERM stop it gracefully: new requests get 503, those in flight get server.shutdown_grace_s to finish
// (then they are cancelled and answered), and it exits 0.
#include <malloc.h>

#include <chrono>
#include <iostream>

#include "bitrun/decoder_set.hpp"
#include "bitrun/frontend.hpp"
#include "bitrun/log.hpp"
#include "bitrun/scheduler.hpp"
#include "commands.hpp"
#include "options.hpp"
#include "runtime.hpp"
#include "signals.hpp"

namespace bitrun::cli {

int run_serve(const Args& args, char** envp) {
  CommandLine cl = parse_command_line(args, {}, envp, {{"--host", ""}, {"--port", "-p"}});
  if (cl.help || !cl.positional.empty()) {
    std::cout << "usage: bitrun serve [-m MODEL.gguf] [--host ADDR] [--port N] [-c config.yaml] [--set KEY=VALUE]\n"
                 "OpenAI-compatible HTTP server: GET /health, GET /v1/models, POST /v1/chat/completions,\n"
                 "POST /v1/completions, POST /tokenize, POST /detokenize, GET /metrics. Settings are the server.*\n"
                 "keys (--host and --port set server.host and server.port; port 0 = any free port). API keys:\n"
                 "server.api_keys or BITRUN_SERVER_API_KEYS=key1,key2. SIGINT/SIGTERM stop it gracefully: requests in\n"
                 "flight get server.shutdown_grace_s to finish. log.format=json: JSON log lines, one per request.\n\n"
              << common_options_help();
    return cl.help ? 0 : 2;
  }
  if (auto host = cl.value("--host"); !host.empty())
    cl.config.set("server.host", host, ConfigSource::CommandLine, "command line");
  if (auto port = cl.value("--port"); !port.empty())
    cl.config.set("server.port", port, ConfigSource::CommandLine, "command line");
  apply_logging(cl);
  const std::filesystem::path model_file = model_path(cl.config);
  // glibc gives each thread that allocates concurrently an arena of its own (up to 8 per core), and an arena keeps
  // what was freed in it: with one HTTP thread per connection that held the memory of every large request for good.
  // A few arenas shared by all threads, trimmed when the server goes idle (Scheduler), keep RSS near the model's.
  mallopt(M_ARENA_MAX, 4);

  Runtime rt;
  rt.host = open_plugins(cl.config);
  std::unique_ptr<Frontend> frontend = rt.host->create_frontend("http", cl.config);
  // Before any thread starts (the server's, OpenMP's): they all inherit the blocked signals.
  SignalWatcher signals([&](int sig) {
    logger("serve")->info("signal {}: shutting down", sig);
    frontend->stop();
  });
  frontend->listen();
  load_model(rt, cl.config, model_file);

  Scheduler scheduler(*rt.model, SchedulerOptions{static_cast<std::size_t>(cl.config.get_int("server.max_parallel")),
                                                  static_cast<std::size_t>(cl.config.get_int("server.max_queue"))});
  DecoderSet decoders(*rt.host, cl.config, cl.config.get_string("decoder.type"));
  std::string model_id = cl.config.get_string("server.model_id");
  if (model_id.empty()) model_id = model_file.stem().string();
  ServeContext context{cl.config, *rt.model, scheduler, decoders, model_id, std::chrono::system_clock::now()};
  const int status = frontend->serve(context);
  frontend->stop();
  scheduler.shutdown();
  return status;
}

}  // namespace bitrun::cli
