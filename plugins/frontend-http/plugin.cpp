// Plugin entry points of the HTTP frontend.
#include "bitrun/plugin/plugin_abi.hpp"
#include "http_frontend.hpp"
#include "settings.hpp"

namespace bitrun::http {

const PluginDescriptor& descriptor() {
  static const PluginDescriptor d{PluginKind::Frontend, "http", "0.1.0",
                                  "OpenAI-compatible HTTP server (chat, completions, SSE streaming, metrics)", 0,
                                  nullptr, setting_table().data(), setting_table().size()};
  return d;
}

std::unique_ptr<Frontend> create_frontend(const Config& config) { return std::make_unique<HttpFrontend>(config); }

}  // namespace bitrun::http

BITRUN_PLUGIN_ABI_EXPORT(bitrun::http::descriptor)
BOOST_DLL_ALIAS(bitrun::http::create_frontend, bitrun_create_frontend)
