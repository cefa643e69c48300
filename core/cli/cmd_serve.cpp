// `bitrun serve`: runs the frontend plugin frontend.type (default `http`, the OpenAI-compatible HTTP server). It
// listens first, so a health check can see "loading" while the model loads, then serves every request through one
// scheduler (continuous batching), sized by the frontend. SIGINT/SIGTERM stop it gracefully (the frontend decides
// how long requests in flight may still run), and it exits 0.
#include <malloc.h>

#include <chrono>
#include <iostream>

#include "bitrun/engine/decoder_set.hpp"
#include "bitrun/plugin/frontend.hpp"
#include "bitrun/base/log.hpp"
#include "bitrun/engine/scheduler.hpp"
#include "bitrun/model/kv_cache.hpp"
#include "commands.hpp"
#include "options.hpp"
#include "runtime.hpp"
#include "signals.hpp"

namespace bitrun::cli {

int run_serve(const Args& args, char** envp) {
  CommandLine cl = parse_command_line(args, {}, envp);
  if (cl.help || !cl.positional.empty()) {
    std::cout << "usage: bitrun serve [-m MODEL.gguf] [-c config.yaml] [--set KEY=VALUE] [frontend options]\n"
                 "Runs the frontend plugin frontend.type (default http: the OpenAI-compatible HTTP server, GET\n"
                 "/health, GET /v1/models, POST /v1/chat/completions, POST /v1/completions, POST /tokenize, POST\n"
                 "/detokenize, GET /metrics). Its settings are the keys its plugin adds (`bitrun config --print`);\n"
                 "their shorthands are listed below. SIGINT/SIGTERM stop it gracefully: requests in flight get time\n"
                 "to finish. log.format=json: JSON log lines, one per request.\n\n"
              << common_options_help(&cl.config.schema());
    return cl.help ? 0 : 2;
  }
  apply_logging(cl);
  const std::filesystem::path model_file = model_path(cl.config);
  // glibc gives each thread that allocates concurrently an arena of its own (up to 8 per core), and an arena keeps
  // what was freed in it: with one HTTP thread per connection that held the memory of every large request for good.
  // A few arenas shared by all threads, trimmed when the server goes idle (Scheduler), keep RSS near the model's.
  mallopt(M_ARENA_MAX, 4);

  Runtime rt;
  rt.host = cl.host.get();
  std::unique_ptr<Frontend> frontend = rt.host->create_frontend(cl.config.get_string("frontend.type"), cl.config);
  // Before any thread starts (the server's, OpenMP's): they all inherit the blocked signals.
  SignalWatcher signals([&](int sig) {
    logger("serve")->info("signal {}: shutting down", sig);
    frontend->stop();
  });
  frontend->listen();
  load_model(rt, cl.config, model_file);

  SchedulerOptions options = frontend->scheduler_options();
  options.kv_cache = kv_cache_type_from_config(cl.config);
  Scheduler scheduler(*rt.model, options);
  DecoderSet decoders(*rt.host, cl.config, cl.config.get_string("decoder.type"));
  ServeContext context{cl.config, *rt.model, scheduler, decoders, model_file.stem().string(),
                       std::chrono::system_clock::now()};
  const int status = frontend->serve(context);
  frontend->stop();
  scheduler.shutdown();
  return status;
}

}  // namespace bitrun::cli
