// Is the client of a request still connected? cpp-httplib 0.11.4 gives a handler no way to ask (a streamed write
// only fails after the peer is gone, and a non-streamed handler writes nothing until it returns), so we find the
// request's socket among the process's descriptors by its two endpoints (local and remote address and port are
// in the Request) and look at it, remembering per thread the socket found last (a keep-alive connection's next
// request). The socket stays open while the handler and its content provider run.
#pragma once

#include <string>
#include <vector>

namespace httplib {
struct Request;
}

namespace bitrun::http {

// The two ends of a TCP socket as httplib writes them into a Request (numeric host, port).
struct SocketEndpoints {
  std::string local_host, remote_host;
  int local_port = -1, remote_port = -1;
};
// The local end of an IPv4/IPv6 socket, connected or listening (false for any other descriptor).
bool local_endpoint(int fd, std::string& host, int& port);
// False when fd is not a connected IPv4/IPv6 socket.
bool socket_endpoints(int fd, SocketEndpoints& out);
// The descriptors the process has open (from /proc/self/fd; empty where that cannot be read).
std::vector<int> open_descriptors();
// The socket a request arrived on (-1 when not found), remembered per thread: httplib serves a connection's
// keep-alive requests on one thread, so the descriptor table is scanned once per connection, not per request.
int request_socket(const httplib::Request& request);

class ClientConnection {
 public:
  explicit ClientConnection(const httplib::Request& request);
  // False once the peer closed or reset the connection. True when the socket could not be found.
  bool alive() const;
  bool found() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace bitrun::http
