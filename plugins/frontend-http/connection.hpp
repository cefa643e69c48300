// Is the client of a request still connected? cpp-httplib 0.11.4 gives a handler no way to ask (a streamed write
// only fails after the peer is gone, and a non-streamed handler writes nothing until it returns), so we find the
// request's socket among the process's descriptors by its two endpoints (local and remote address and port are
// in the Request) and look at it, remembering per thread the socket found last (a keep-alive connection's next
// request). The socket stays open while the handler and its content provider run.
#pragma once

namespace httplib {
struct Request;
}

namespace bitrun::http {

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
