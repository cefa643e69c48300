#include "bitrun/base/histogram.hpp"

#include <algorithm>
#include <cmath>

#include "bitrun/base/error.hpp"

namespace bitrun {

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), per_bucket_(bounds_.size() + 1, 0) {
  for (std::size_t i = 1; i < bounds_.size(); ++i)
    if (!(bounds_[i] > bounds_[i - 1])) throw Error("histogram bucket bounds must increase strictly");
}

void Histogram::observe(double value) {
  if (std::isnan(value)) return;
  const auto bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();   // first >= value
  ++per_bucket_[static_cast<std::size_t>(bucket)];
  ++count_;
  sum_ += value;
}

std::uint64_t Histogram::cumulative(std::size_t i) const {
  std::uint64_t n = 0;
  for (std::size_t b = 0; b <= i && b < per_bucket_.size(); ++b) n += per_bucket_[b];
  return n;
}

std::vector<double> latency_buckets_seconds() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
}

}  // namespace bitrun
