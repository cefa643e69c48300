// The HTTP server's connection threads. httplib gives each connection a thread from start to end, reading the
// request head included, so a fixed pool let a few dozen slow clients (a byte a second) hold every thread and
// leave /health unanswered. This pool keeps `base` threads and starts more whenever none is idle, up to `max`:
// slow clients then cost a sleeping thread each, and a server survives as many of them as `max` allows while
// /health, /metrics and real requests still find a thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <httplib.h>

namespace bitrun::http {

class ConnectionPool final : public httplib::TaskQueue {
 public:
  ConnectionPool(std::size_t base, std::size_t max);
  ~ConnectionPool() override;

  void enqueue(std::function<void()> fn) override;
  void shutdown() override;

  std::size_t threads() const;

 private:
  void work();
  void start_thread();   // caller holds mu_

  const std::size_t max_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  std::size_t idle_ = 0;
  bool shutdown_ = false;
};

}  // namespace bitrun::http
