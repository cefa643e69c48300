// Frontend: something that serves requests against a running engine (the HTTP server is one). The host creates
// it from config and calls run(), which blocks until shutdown.
#pragma once

#include <memory>
#include <string>

namespace bitrun {

class Config;
class Engine;

class Frontend {
 public:
  virtual ~Frontend() = default;
  virtual std::string name() const = 0;
  // Serve until asked to stop (signal or stop()); returns the process exit code.
  virtual int run(Engine& engine) = 0;
  // Thread-safe request to make run() return after finishing or cancelling in-flight work.
  virtual void stop() = 0;
};

// Factory every frontend plugin exports as `bitrun_create_frontend`.
using CreateFrontendFn = std::unique_ptr<Frontend>(const Config&);

}  // namespace bitrun
