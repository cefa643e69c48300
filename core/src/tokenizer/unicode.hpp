// UTF-8 helpers (decode_utf8 / append_utf8 are in bitrun/utf8.hpp) and the few Unicode character classes the tokenizers need (internal to the core).
// The class tables are generated (unicode_tables.cpp, by scripts/gen_unicode_tables.py) so no ICU is needed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bitrun/base/utf8.hpp"

namespace bitrun::unicode {

// Inclusive code point range.
struct Range {
  char32_t first, last;
};

// Generated tables: sorted, disjoint.
extern const char* const kUnicodeVersion;
std::span<const Range> letter_ranges();      // \p{L}
std::span<const Range> number_ranges();      // \p{N}
std::span<const Range> whitespace_ranges();  // \s = White_Space

// A non-ASCII code point whose simple case folding is an ASCII letter (U+017F -> 's').
struct AsciiFold {
  char32_t cp;
  char ascii;
};
std::span<const AsciiFold> ascii_folds();

bool is_letter(char32_t cp);
bool is_number(char32_t cp);
bool is_whitespace(char32_t cp);

// Simple case folding restricted to results in a-z: 'A'..'Z' and the ascii_folds() code points map to their
// lowercase ASCII letter; everything else is returned unchanged. Enough for case-insensitive ASCII patterns.
char32_t fold_to_ascii(char32_t cp);


// Code points of `s` with their byte offsets; an ill-formed sequence becomes one kReplacement unit spanning its
// bytes, so the byte spans always tile the input exactly.
struct CodeUnit {
  char32_t cp;
  std::size_t offset, len;
};
std::vector<CodeUnit> split_utf8(std::string_view s);

// `s` with every ill-formed sequence replaced by U+FFFD.
std::string sanitize_utf8(std::string_view s);

}  // namespace bitrun::unicode
