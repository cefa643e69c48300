// UTF-8 helpers and character-class lookups over the generated range tables.
#include "tokenizer/unicode.hpp"

#include <algorithm>

namespace bitrun::unicode {
namespace {

bool in_ranges(std::span<const Range> ranges, char32_t cp) {
  auto it = std::upper_bound(ranges.begin(), ranges.end(), cp, [](char32_t c, const Range& r) { return c < r.first; });
  return it != ranges.begin() && cp <= std::prev(it)->last;
}

bool is_continuation(unsigned char b) { return (b & 0xC0) == 0x80; }

}  // namespace

// ASCII fast paths: pre-tokenizing ordinary text is dominated by ASCII.
bool is_letter(char32_t cp) {
  if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  return in_ranges(letter_ranges(), cp);
}

bool is_number(char32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return in_ranges(number_ranges(), cp);
}

bool is_whitespace(char32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  return in_ranges(whitespace_ranges(), cp);
}

char32_t fold_to_ascii(char32_t cp) {
  if (cp >= 'A' && cp <= 'Z') return cp + ('a' - 'A');
  if (cp < 0x80) return cp;
  for (const AsciiFold& f : ascii_folds())
    if (f.cp == cp) return static_cast<char32_t>(f.ascii);
  return cp;
}

Utf8Step decode_utf8(std::string_view s, std::size_t pos) {
  using S = Utf8Step::Status;
  const auto b0 = static_cast<unsigned char>(s[pos]);
  if (b0 < 0x80) return {S::Ok, b0, 1};
  std::size_t need;
  char32_t cp;
  // The allowed range of the second byte excludes overlongs (E0, F0), surrogates (ED) and > U+10FFFF (F4).
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1, cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2, cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3, cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {S::Invalid, kReplacement, 1};
  }
  std::size_t i = 1;
  for (; i <= need; ++i) {
    if (pos + i >= s.size()) return {S::Incomplete, kReplacement, i};
    const auto b = static_cast<unsigned char>(s[pos + i]);
    const bool ok = i == 1 ? (b >= lo && b <= hi) : is_continuation(b);
    if (!ok) return {S::Invalid, kReplacement, i};
    cp = (cp << 6) | (b & 0x3F);
  }
  return {S::Ok, cp, need + 1};
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::vector<CodeUnit> split_utf8(std::string_view s) {
  std::vector<CodeUnit> out;
  out.reserve(s.size());
  for (std::size_t pos = 0; pos < s.size();) {
    Utf8Step step = decode_utf8(s, pos);
    out.push_back({step.cp, pos, step.len});
    pos += step.len;
  }
  return out;
}

std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t pos = 0; pos < s.size();) {
    Utf8Step step = decode_utf8(s, pos);
    if (step.status == Utf8Step::Status::Ok)
      out.append(s.substr(pos, step.len));
    else
      append_utf8(out, kReplacement);
    pos += step.len;
  }
  return out;
}

void append_json_string(std::string& out, std::string_view s) {
  static const char* kHex = "0123456789abcdef";
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const Utf8Step step = decode_utf8(s, i);
      const std::size_t n = step.status == Utf8Step::Status::Ok ? step.len : 0;
      if (n == 0) {
        out += "\xEF\xBF\xBD";   // U+FFFD for a byte that starts no well-formed character
        ++i;
      } else {
        out.append(s.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  out += '"';
}


}  // namespace bitrun::unicode
