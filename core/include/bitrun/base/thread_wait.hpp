// How the backends' OpenMP threads wait between kernels. A forward pass runs a few hundred short parallel
// regions; libgomp's default makes idle threads spin for a while before sleeping. On cores the process has to
// itself that is the fastest choice, but when other processes share the cores every region waits for a thread the
// OS has descheduled, and decoding can slow down tenfold. The choice must reach libgomp before it initializes,
// which happens when the first backend plugin is loaded: call apply_thread_wait() before creating the PluginHost.
#pragma once

#include <string>

namespace bitrun {

enum class ThreadWait { Auto, Spin, Sleep };

// Parses the `threads_wait` config value: auto, spin or sleep (ConfigError otherwise).
ThreadWait parse_thread_wait(const std::string& value);

// What apply_thread_wait() did, for the log.
struct ThreadWaitOutcome {
  bool applied = false;   // the OpenMP environment was set from `wait`
  std::string reason;     // why not, or what was set
};

// Sets OMP_WAIT_POLICY for `wait` (Spin: active, Sleep: passive; Auto leaves libgomp's spin-then-sleep default)
// unless the user already set OMP_WAIT_POLICY or GOMP_SPINCOUNT, which win, or the OpenMP runtime is already
// loaded in this process, when the environment is no longer read.
ThreadWaitOutcome apply_thread_wait(ThreadWait wait);

}  // namespace bitrun
