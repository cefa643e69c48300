// /metrics in Prometheus' text format: the scheduler's gauges and counters (requests running and waiting = the
// queue depth, prompt and generated tokens, decode steps, tokens per second), its latency histograms (time to first
// token, queue wait, request duration) and HTTP responses by status code.
#pragma once

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

 private:
  mutable std::mutex mu_;
  std::map<int, std::uint64_t> by_status_;
};

std::string render_metrics(const SchedulerStats& stats, const std::map<int, std::uint64_t>& http_responses,
                           const std::string& model_id);

}  // namespace bitrun::http
