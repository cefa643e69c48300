// GET /: the browser chat page (web/index.html, compiled into the plugin). Served while the model loads too: the
// page itself says when the server is not ready.
#pragma once

#include <httplib.h>

namespace bitrun::http {

void send_chat_page(httplib::Response& res);

}  // namespace bitrun::http
