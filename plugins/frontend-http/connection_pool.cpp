#include "connection_pool.hpp"

#include <algorithm>

namespace bitrun::http {

ConnectionPool::ConnectionPool(std::size_t base, std::size_t max) : max_(std::max(base, max)) {
  std::lock_guard lock(mu_);
  for (std::size_t i = 0; i < base; ++i) start_thread();
}

ConnectionPool::~ConnectionPool() { shutdown(); }

void ConnectionPool::start_thread() {
  ++idle_;
  threads_.emplace_back([this] { work(); });
}

void ConnectionPool::enqueue(std::function<void()> fn) {
  {
    std::lock_guard lock(mu_);
    jobs_.push_back(std::move(fn));
    // Every thread busy (slow clients, long streams): one more, so this connection is not left waiting behind them.
    if (!shutdown_ && idle_ < jobs_.size() && threads_.size() < max_) start_thread();
  }
  cv_.notify_one();
}

void ConnectionPool::shutdown() {
  {
    std::lock_guard lock(mu_);
    if (shutdown_ && threads_.empty()) return;
    shutdown_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  std::lock_guard lock(mu_);
  threads_.clear();
}

std::size_t ConnectionPool::threads() const {
  std::lock_guard lock(mu_);
  return threads_.size();
}

void ConnectionPool::work() {
  for (;;) {
    std::function<void()> fn;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return !jobs_.empty() || shutdown_; });
      if (jobs_.empty()) return;   // shutting down with nothing left
      fn = std::move(jobs_.front());
      jobs_.pop_front();
      --idle_;
    }
    fn();
    std::lock_guard lock(mu_);
    ++idle_;
  }
}

}  // namespace bitrun::http
