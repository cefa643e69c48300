// A parallel loop for code outside the backend plugins, which must not load OpenMP itself (libgomp is loaded by
// the first backend plugin, after its wait policy is set: thread_wait.hpp): the model loader's passes over large
// tensors and bench's bandwidth probe.
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

namespace bitrun {

// Runs fn(begin, end) over `threads` contiguous slices of [0, n): the calling thread takes the first, one
// std::thread each the others. The first exception thrown by any slice is rethrown once all have finished.
template <typename Fn>
void parallel_slices(std::int64_t n, int threads, Fn fn) {
  const std::int64_t slices = std::clamp<std::int64_t>(threads, 1, std::max<std::int64_t>(n, 1));
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(slices));
  auto run = [&](std::int64_t s) {
    try {
      fn(n * s / slices, n * (s + 1) / slices);
    } catch (...) {
      errors[static_cast<std::size_t>(s)] = std::current_exception();
    }
  };
  std::vector<std::thread> workers;
  for (std::int64_t s = 1; s < slices; ++s) workers.emplace_back(run, s);
  run(0);
  for (auto& w : workers) w.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace bitrun
