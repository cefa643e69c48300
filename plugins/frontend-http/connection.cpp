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
  SocketEndpoints e;
  return socket_endpoints(fd, e) && e.local_port == req.local_port && e.local_host == req.local_addr &&
         e.remote_port == req.remote_port && e.remote_host == req.remote_addr;
}

}  // namespace

bool local_endpoint(int fd, std::string& host, int& port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return false;
  if (addr.ss_family != AF_INET && addr.ss_family != AF_INET6) return false;
  return endpoint(addr, len, host, port);
}

bool socket_endpoints(int fd, SocketEndpoints& out) {
  if (!local_endpoint(fd, out.local_host, out.local_port)) return false;
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return false;
  return endpoint(addr, len, out.remote_host, out.remote_port);
}

std::vector<int> open_descriptors() {
  std::vector<int> fds;
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return fds;
  const int own = dirfd(dir);
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end != e->d_name && *end == '\0' && fd != own) fds.push_back(static_cast<int>(fd));
  }
  closedir(dir);
  return fds;
}

int request_socket(const httplib::Request& req) {
  if (req.remote_port < 0 || req.local_port < 0) return -1;
  // A closed and reused descriptor fails the endpoint check and is looked up again.
  thread_local int last_fd = -1;
  if (last_fd >= 0 && matches(last_fd, req)) return last_fd;
  for (int fd : open_descriptors())
    if (matches(fd, req)) return last_fd = fd;
  return -1;
}

ClientConnection::ClientConnection(const httplib::Request& req) : fd_(request_socket(req)) {}

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
