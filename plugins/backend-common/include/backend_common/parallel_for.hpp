// When the SIMD kernels use their OpenMP team. A parallel region wakes the team and ends at a barrier, which costs
// microseconds even with one thread (libgomp still runs its team code and a futex wake per region). A small
// kernel is over before that: one row through a 128 x 128 projection is 16K multiply-adds, a fraction of a
// microsecond, and a forward of a small model is a few hundred such kernels. So a kernel whose work is below
// kMinParallelWork runs on the calling thread, outside any parallel region.
#pragma once

#include <omp.h>

#include <cstdint>

namespace bitrun {

// Multiply-adds (or element operations) below which a kernel stays on the calling thread: about 10 microseconds
// of single-thread work, the order of what waking a second thread and meeting it at the barrier costs on these
// VMs. Measured on the default model with 2 threads: at 2^18 a forward of 8 rows cost 5.4x one row, at 2^20 3.3x
// (the 1-thread figure); a 2B model's every matmul is far above either.
constexpr std::int64_t kMinParallelWork = std::int64_t{1} << 20;

// The threads worth using for `work` operations.
inline int threads_for_work(std::int64_t work, int threads) { return work < kMinParallelWork ? 1 : threads; }

// body(i) for i in [0, n): statically split across `threads` OpenMP threads, or a plain loop on the calling
// thread when there is one thread or one item.
template <typename Body>
void parallel_for(std::int64_t n, int threads, Body body) {
  if (threads <= 1 || n <= 1) {
    for (std::int64_t i = 0; i < n; ++i) body(i);
    return;
  }
#pragma omp parallel for num_threads(threads) schedule(static)
  for (std::int64_t i = 0; i < n; ++i) body(i);
}

}  // namespace bitrun
