// Frontend: something that serves requests (the HTTP server is one). The host creates it from config, lets it
// start listening before the model is loaded (so health checks can see "loading"), then hands it everything a
// request needs in a ServeContext and calls serve(), which blocks until stop().
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "bitrun/engine/scheduler.hpp"

namespace bitrun {

class Config;
class DecoderSet;
class Model;

// What a frontend serves with. Everything here outlives serve().
struct ServeContext {
  const Config& config;
  const Model& model;
  Scheduler& scheduler;        // every request decodes through it (continuous batching)
  DecoderSet& decoders;        // decoder plugins by name (decoder.type is the default)
  std::string model_id;        // what clients name the model: the file's stem, unless the frontend's settings say
  std::chrono::system_clock::time_point loaded_at;
};

class Frontend {
 public:
  virtual ~Frontend() = default;
  virtual std::string name() const = 0;
  // How many requests the scheduler decodes together and queues (from the frontend's own settings).
  virtual SchedulerOptions scheduler_options() const = 0;
  // Starts accepting connections; until serve() gets a context, requests are answered "loading" (503). Returns
  // the bound port (useful when the configured port is 0). Throws Error naming the address when it cannot bind.
  virtual int listen() = 0;
  // Serves with `context` until stop(); listens first if listen() was not called. Returns the exit code.
  virtual int serve(ServeContext& context) = 0;
  // Thread-safe: stop accepting, cancel in-flight requests, make serve() return (immediately if called before).
  virtual void stop() = 0;
};

// Factory every frontend plugin exports as `bitrun_create_frontend`. Reads the settings its descriptor declares
// (plugin_abi.hpp) from config.
using CreateFrontendFn = std::unique_ptr<Frontend>(const Config&);

}  // namespace bitrun
