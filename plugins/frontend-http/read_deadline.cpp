#include "read_deadline.hpp"

#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "connection.hpp"

namespace bitrun::http {
namespace {

// The inode number of socket fd (0 if fd is not a socket).
std::uint64_t socket_inode(int fd) {
  struct stat st {};
  return fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) ? static_cast<std::uint64_t>(st.st_ino) : 0;
}

}  // namespace

ReadDeadline::ReadDeadline(int port, std::chrono::milliseconds timeout,
                           std::function<void(const std::string&)> on_drop)
    : port_(port),
      timeout_(timeout),
      // A deadline is met within a quarter of itself (at most a second late), at a few syscalls per connection.
      interval_(std::clamp(timeout / 4, std::chrono::milliseconds(50), std::chrono::milliseconds(1000))),
      on_drop_(std::move(on_drop)),
      watcher_([this] { watch(); }) {}

ReadDeadline::~ReadDeadline() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  watcher_.join();
}

void ReadDeadline::request_read(const httplib::Request& request) { mark(request, true); }

void ReadDeadline::response_written(const httplib::Request& request) { mark(request, false); }

void ReadDeadline::mark(const httplib::Request& request, bool handling) {
  const std::uint64_t inode = socket_inode(request_socket(request));   // outside the lock: may scan descriptors
  if (!inode) return;
  std::lock_guard lock(mu_);
  Tracked& c = connections_[inode];
  c.handling = handling;
  c.touched = Clock::now();
  if (!handling) c.since = c.touched;   // the next request's clock starts with this response
}

void ReadDeadline::watch() {
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, interval_, [this] { return stop_; })) {
    lock.unlock();
    scan();
    lock.lock();
  }
}

void ReadDeadline::scan() {
  // The sockets first, without the lock (request threads only wait for it briefly).
  const Clock::time_point started = Clock::now();
  struct Connection {
    int fd;
    std::uint64_t inode;
    std::string client;
  };
  std::vector<Connection> connections;
  for (int fd : open_descriptors()) {
    SocketEndpoints e;
    const std::uint64_t inode = socket_inode(fd);
    if (inode && socket_endpoints(fd, e) && e.local_port == port_)
      connections.push_back({fd, inode, e.remote_host + ":" + std::to_string(e.remote_port)});
  }
  const Clock::time_point now = Clock::now();
  std::vector<Connection> overdue;
  {
    std::lock_guard lock(mu_);
    const std::uint64_t scan = ++scans_;
    for (const Connection& c : connections) {
      auto [it, fresh] = connections_.try_emplace(c.inode);
      Tracked& p = it->second;
      if (fresh) p.since = p.touched = now;
      p.scan = scan;
      if (!p.handling && !p.dropped && now - p.since > timeout_) {
        p.dropped = true;
        overdue.push_back(c);
      }
    }
    // Connections gone since the last scan (unless a request thread touched the entry after this scan began).
    std::erase_if(connections_, [&](const auto& e) { return e.second.scan != scan && e.second.touched < started; });
  }
  for (const Connection& c : overdue) {
    // Still the same connection (a descriptor closed meanwhile may have been reused): shutting it down wakes the
    // thread blocked reading it, and httplib closes it.
    if (socket_inode(c.fd) != c.inode) continue;
    ::shutdown(c.fd, SHUT_RDWR);
    if (on_drop_) on_drop_(c.client);
  }
}

}  // namespace bitrun::http
