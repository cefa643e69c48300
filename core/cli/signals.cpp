#include "signals.hpp"

#include <csignal>

namespace bitrun::cli {

SignalWatcher::SignalWatcher(std::function<void(int)> on_signal) {
  sigemptyset(&set_);
  sigaddset(&set_, SIGINT);
  sigaddset(&set_, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set_, &old_);
  thread_ = std::thread([this, on_signal = std::move(on_signal)] {
    for (;;) {
      int sig = 0;
      if (sigwait(&set_, &sig) != 0) continue;
      if (exiting_) return;
      if (received_.exchange(sig) == 0) on_signal(sig);   // a second signal while stopping changes nothing
    }
  });
}

SignalWatcher::~SignalWatcher() {
  exiting_ = true;
  pthread_kill(thread_.native_handle(), SIGTERM);   // blocked everywhere, so only the watcher's sigwait sees it
  thread_.join();
  pthread_sigmask(SIG_SETMASK, &old_, nullptr);
}

}  // namespace bitrun::cli
