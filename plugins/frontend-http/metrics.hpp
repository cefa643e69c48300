// /metrics in Prometheus' text format: the scheduler's gauges and counters (requests running and waiting = the
// queue depth, prompt and generated tokens, decode steps, tokens per second), its latency histograms (time to first
// token, queue wait, request duration) and HTTP responses by status code.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "bitrun/engine/scheduler.hpp"

namespace bitrun::http {

// Responses sent, by status (counted from every server thread).
class HttpCounters {
 public:
  void count(int status);
  std::map<int, std::uint64_t> snapshot() const;
  // Connections closed because their request did not arrive in time (read_deadline.hpp).
  void count_dropped_connection() { ++dropped_connections_; }
  std::uint64_t dropped_connections() const { return dropped_connections_; }

 private:
  mutable std::mutex mu_;
  std::map<int, std::uint64_t> by_status_;
  std::atomic<std::uint64_t> dropped_connections_{0};
};

std::string render_metrics(const SchedulerStats& stats, const std::map<int, std::uint64_t>& http_responses,
                           std::uint64_t dropped_connections, const std::string& model_id);

}  // namespace bitrun::http
