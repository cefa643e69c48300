// Graceful shutdown on SIGINT/SIGTERM for a multi-threaded command: the signals are blocked in every thread
// (construct this before starting any), and one watcher thread waits for them with sigwait() and runs the
// callback there, where taking locks and joining threads is allowed (unlike in a signal handler).
#pragma once

#include <pthread.h>

#include <atomic>
#include <functional>
#include <thread>

namespace bitrun::cli {

class SignalWatcher {
 public:
  explicit SignalWatcher(std::function<void(int signal)> on_signal);
  ~SignalWatcher();   // stops watching and restores the signal mask
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

  // The signal that arrived, 0 if none.
  int received() const { return received_; }

 private:
  sigset_t set_{}, old_{};
  std::atomic<bool> exiting_{false};
  std::atomic<int> received_{0};
  std::thread thread_;
};

}  // namespace bitrun::cli
