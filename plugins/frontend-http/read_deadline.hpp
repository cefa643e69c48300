// A deadline for reading a request. cpp-httplib 0.11.4 times each read of a request head separately and runs no
// hook between accepting a connection and having parsed its head, so a client that trickles a byte every few
// seconds (slowloris) holds a connection thread for as long as it likes, and enough of them exhaust
// server.max_connections. A watcher thread therefore looks at the process's sockets on the server's port a few
// times per timeout, notes when each connection appeared or when its last response was written, and shuts down a
// connection whose next request has not been read in full (head and body) within the timeout. A request being
// handled (a long generation, a stream) is never cut. Connections are told apart by their socket's inode number:
// a client's address and port, and a descriptor number, are reused by later connections.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace httplib {
struct Request;
}

namespace bitrun::http {

class ReadDeadline {
 public:
  using Clock = std::chrono::steady_clock;
  // Watches connections to local `port`; on_drop(client "host:port") runs on the watcher for each one cut.
  ReadDeadline(int port, std::chrono::milliseconds timeout, std::function<void(const std::string&)> on_drop);
  ~ReadDeadline();
  ReadDeadline(const ReadDeadline&) = delete;
  ReadDeadline& operator=(const ReadDeadline&) = delete;

  // The request has been read in full: its handler runs without a deadline.
  void request_read(const httplib::Request& request);
  // Its response was written: the connection may send another request, within a new deadline.
  void response_written(const httplib::Request& request);

 private:
  struct Tracked {   // one connection
    Clock::time_point since;     // the deadline runs from here (connection seen, or last response written)
    Clock::time_point touched;   // last change by a request thread (a scan older than it keeps the entry)
    bool handling = false;
    bool dropped = false;
    std::uint64_t scan = 0;      // last scan that saw the connection
  };
  // The connection `request` arrived on is being handled (or, with false, waits for its next request).
  void mark(const httplib::Request& request, bool handling);
  void watch();
  void scan();

  const int port_;
  const std::chrono::milliseconds timeout_, interval_;
  const std::function<void(const std::string&)> on_drop_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::uint64_t scans_ = 0;
  std::map<std::uint64_t, Tracked> connections_;   // by socket inode
  std::thread watcher_;
};

}  // namespace bitrun::http
