#include "chat_page.hpp"

#include <cstddef>

namespace bitrun::http {

// web/index.html, embedded at build time (cmake/EmbedFile.cmake).
extern const unsigned char kChatPage[];
extern const std::size_t kChatPage_size;

void send_chat_page(httplib::Response& res) {
  res.status = 200;
  res.set_content(reinterpret_cast<const char*>(kChatPage), kChatPage_size, "text/html; charset=utf-8");
  res.set_header("Cache-Control", "no-cache");
  // The page's script and style are inline and it talks only to this server; nothing may load from elsewhere.
  res.set_header("Content-Security-Policy",
                 "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'");
}

}  // namespace bitrun::http
