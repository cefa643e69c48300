// Strict UTF-8 decoding and encoding, shared by the tokenizers (core), JSON log lines and the HTTP frontend's JSON.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace bitrun::unicode {

constexpr char32_t kReplacement = 0xFFFD;

// One step of UTF-8 decoding at `pos`.
struct Utf8Step {
  enum class Status { Ok, Invalid, Incomplete };
  Status status;
  char32_t cp;       // the code point when Ok, kReplacement otherwise
  std::size_t len;   // bytes consumed: the whole character, or the maximal ill-formed prefix (at least 1)
};

// Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF). Incomplete = the bytes up to the end of
// `s` are a valid start of a character that continues past it (what a streaming decoder must wait for).
Utf8Step decode_utf8(std::string_view s, std::size_t pos);

void append_utf8(std::string& out, char32_t cp);

// `s` as a JSON string literal: quotes, the escapes JSON requires, and U+FFFD for each byte that starts no
// well-formed character, so the result is valid UTF-8 JSON whatever `s` holds (HTTP responses, JSON log lines).
void append_json_string(std::string& out, std::string_view s);

}  // namespace bitrun::unicode
