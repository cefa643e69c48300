// Small helpers shared by the test suites.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "bitrun/config/config.hpp"
#include "bitrun/base/cpu_features.hpp"
#include "bitrun/plugin/plugin_host.hpp"
#include "bitrun/tokenizer/tokenizer.hpp"

namespace bitrun::test {

// A file of the shared data directory: $BITRUN_SHARED_DIR, else ../shared beside the source tree (as in CI).
inline std::filesystem::path shared_path(std::string_view relative) {
  const char* env = std::getenv("BITRUN_SHARED_DIR");
  return (env && *env ? std::filesystem::path(env) : std::filesystem::path(BITRUN_SOURCE_DIR) / ".." / "shared") /
         relative;
}

#ifdef BITRUN_TEST_PLUGIN_DIR   // (not in the stand-alone sanitizer build of the GGUF tests)
// The project's plugins as built (BITRUN_TEST_PLUGIN_DIR), opened once.
inline const PluginHost& project_plugins() {
  static const PluginHost host({BITRUN_TEST_PLUGIN_DIR}, detect_cpu());
  return host;
}

// A configuration with the core's keys and those the project's plugins add (decoder.*, server.*), at defaults.
inline Config plugin_config() { return Config(project_plugins().config_schema()); }
#endif

// The message of the exception of type E that `f` throws, or "(no error)".
template <typename E>
std::string error_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "(no error)";
}

// A SentencePiece vocab of <unk> <s> </s> and the 256 byte tokens (ids 3..258), all scores 0: any text encodes
// by byte fallback. Tests append their own tokens.
inline Vocab byte_fallback_spm_vocab() {
  Vocab v;
  v.model = Vocab::Model::Spm;
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.types = {TokenType::Unknown, TokenType::Control, TokenType::Control};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    v.tokens.push_back(buf);
    v.types.push_back(TokenType::Byte);
  }
  v.scores.assign(v.tokens.size(), 0.0f);
  v.unk = 0, v.bos = 1, v.eos = 2;
  return v;
}

}  // namespace bitrun::test
