#include "connection.hpp"

#include <dirent.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cstdlib>
#include <string>

#include <httplib.h>

namespace bitrun::http {
namespace {

// Numeric host and port of a socket address, as httplib formats Request::remote_addr / local_addr.
bool endpoint(const sockaddr_storage& addr, socklen_t len, std::string& host, int& port) {
  char h[NI_MAXHOST], p[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&addr), len, h, sizeof h, p, sizeof p,
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    return false;
  host = h;
  port = std::atoi(p);
  return true;
}

bool matches(int fd, const httplib::Request& req) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  std::string host;
  int port = -1;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return false;
  if (addr.ss_family != AF_INET && addr.ss_family != AF_INET6) return false;
  if (!endpoint(addr, len, host, port) || port != req.local_port || host != req.local_addr) return false;
  len = sizeof addr;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return false;
  return endpoint(addr, len, host, port) && port == req.remote_port && host == req.remote_addr;
}

}  // namespace

ClientConnection::ClientConnection(const httplib::Request& req) {
  if (req.remote_port < 0 || req.local_port < 0) return;
  // httplib serves a connection's keep-alive requests on one worker thread, so the socket this thread found last
  // is checked first (two syscalls); the descriptor table is scanned once per connection, not once per request.
  // A closed and reused descriptor fails the endpoint check and is looked up again.
  thread_local int last_fd = -1;
  if (last_fd >= 0 && matches(last_fd, req)) {
    fd_ = last_fd;
    return;
  }
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return;
  const int own = dirfd(dir);
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == own) continue;
    if (matches(static_cast<int>(fd), req)) {
      fd_ = last_fd = static_cast<int>(fd);
      break;
    }
  }
  closedir(dir);
}

bool ClientConnection::alive() const {
  if (fd_ < 0) return true;
  pollfd p{fd_, POLLIN | POLLRDHUP, 0};
  if (poll(&p, 1, 0) <= 0) return true;
  if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return false;
  if (p.revents & POLLIN) {
    char c;
    // Readable: either the next pipelined request (alive) or end of stream (gone).
    return recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT) != 0;
  }
  return true;
}

}  // namespace bitrun::http
