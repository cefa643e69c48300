// A histogram with fixed bucket bounds, the shape Prometheus exports (cumulative buckets, sum, count): the
// scheduler's latencies (time to first token, time waiting for a slot, whole request) behind /metrics.
#pragma once

#include <cstdint>
#include <vector>

namespace bitrun {

class Histogram {
 public:
  // Upper bounds, strictly increasing; an implicit +Inf bucket follows the last.
  explicit Histogram(std::vector<double> upper_bounds);

  void observe(double value);   // NaN is ignored

  const std::vector<double>& bounds() const { return bounds_; }
  // Observations <= bounds()[i] (cumulative, as Prometheus' `le` buckets); the +Inf bucket is count().
  std::uint64_t cumulative(std::size_t i) const;
  std::uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> per_bucket_;   // bounds_.size() + 1 (the last: above every bound)
  std::uint64_t count_ = 0;
  double sum_ = 0.0;
};

// Bucket bounds in seconds for request latencies on a CPU server: 5 ms (a cached prompt's first token) to 2 min.
std::vector<double> latency_buckets_seconds();

}  // namespace bitrun
