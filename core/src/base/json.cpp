#include "bitrun/base/json.hpp"

#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>
#include <unordered_set>

#include "bitrun/base/error.hpp"
#include "bitrun/base/utf8.hpp"

namespace bitrun {
namespace {

constexpr int kMaxDepth = 64;

// Length of the well-formed UTF-8 character at s[i], or 0 when it is ill-formed (overlong, surrogate,
// > U+10FFFF, truncated).
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const unicode::Utf8Step step = unicode::decode_utf8(s, i);
  return step.status == unicode::Utf8Step::Status::Ok ? step.len : 0;
}

}  // namespace

class JsonParser {
 public:
  explicit JsonParser(std::string_view text) : s_(text) {}

  Json document() {
    skip_ws();
    Json v = value(0);
    skip_ws();
    if (i_ != s_.size()) fail("unexpected text after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw JsonError(what + " at byte " + std::to_string(i_));
  }
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool consume(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }

  Json value(int depth) {
    if (i_ >= s_.size()) fail("unexpected end of input");
    switch (s_[i_]) {
      case '{': return object(depth + 1);
      case '[': return array(depth + 1);
      case '"': return Json(string());
      case 't': if (consume("true")) return Json(true); break;
      case 'f': if (consume("false")) return Json(false); break;
      case 'n': if (consume("null")) return Json(); break;
      default:
        if (s_[i_] == '-' || (s_[i_] >= '0' && s_[i_] <= '9')) return number();
    }
    fail("unexpected character '" + std::string(1, s_[i_]) + "'");
  }

  Json object(int depth) {
    if (depth > kMaxDepth) fail("nesting deeper than " + std::to_string(kMaxDepth));
    ++i_;
    Json out = Json::object();
    auto& members = out.as_object();
    skip_ws();
    if (i_ < s_.size() && s_[i_] == '}') {
      ++i_;
      return out;
    }
    // Keys seen: a linear scan for small objects, a hash set past kLinearKeys (a tokenizer.json vocabulary has
    // 128K keys, and a request body of many short keys must not cost quadratic time).
    constexpr std::size_t kLinearKeys = 16;
    std::unordered_set<std::string> seen;
    for (;;) {
      skip_ws();
      if (i_ >= s_.size() || s_[i_] != '"') fail("expected a string key");
      const std::size_t key_at = i_;
      std::string key = string();
      bool duplicate = false;
      if (members.size() < kLinearKeys) {
        for (const auto& [k, v] : members) duplicate |= k == key;
      } else {
        if (seen.empty())
          for (const auto& [k, v] : members) seen.insert(k);
        duplicate = !seen.insert(key).second;
      }
      if (duplicate) {
        i_ = key_at;
        fail("duplicate key \"" + key + "\"");
      }
      skip_ws();
      if (i_ >= s_.size() || s_[i_] != ':') fail("expected ':'");
      ++i_;
      skip_ws();
      members.emplace_back(std::move(key), value(depth));
      skip_ws();
      if (i_ < s_.size() && s_[i_] == ',') {
        ++i_;
        continue;
      }
      if (i_ < s_.size() && s_[i_] == '}') {
        ++i_;
        return out;
      }
      fail("expected ',' or '}'");
    }
  }

  Json array(int depth) {
    if (depth > kMaxDepth) fail("nesting deeper than " + std::to_string(kMaxDepth));
    ++i_;
    Json out = Json::array();
    skip_ws();
    if (i_ < s_.size() && s_[i_] == ']') {
      ++i_;
      return out;
    }
    for (;;) {
      skip_ws();
      out.as_array().push_back(value(depth));
      skip_ws();
      if (i_ < s_.size() && s_[i_] == ',') {
        ++i_;
        continue;
      }
      if (i_ < s_.size() && s_[i_] == ']') {
        ++i_;
        return out;
      }
      fail("expected ',' or ']'");
    }
  }

  std::uint32_t hex4() {
    if (i_ + 4 > s_.size()) fail("truncated \\u escape");
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<std::uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<std::uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<std::uint32_t>(c - 'A' + 10);
      else fail("bad hex digit in \\u escape");
    }
    return v;
  }

  std::string string() {
    ++i_;   // opening quote
    std::string out;
    for (;;) {
      if (i_ >= s_.size()) fail("unterminated string");
      const unsigned char c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        ++i_;
        return out;
      }
      if (c < 0x20) fail("control character in a string (escape it)");
      if (c == '\\') {
        if (++i_ >= s_.size()) fail("unterminated escape");
        const char e = s_[i_++];
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            std::uint32_t cp = hex4();
            if (cp >= 0xDC00 && cp <= 0xDFFF) fail("unpaired low surrogate in \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
              if (!consume("\\u")) fail("unpaired high surrogate in \\u escape");
              const std::uint32_t low = hex4();
              if (low < 0xDC00 || low > 0xDFFF) fail("unpaired high surrogate in \\u escape");
              cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            }
            unicode::append_utf8(out, static_cast<char32_t>(cp));
            break;
          }
          default: --i_; fail("bad escape '\\" + std::string(1, e) + "'");
        }
        continue;
      }
      const std::size_t n = utf8_sequence(s_, i_);
      if (n == 0) fail("invalid UTF-8 in a string");
      out.append(s_.substr(i_, n));
      i_ += n;
    }
  }

  Json number() {
    const std::size_t start = i_;
    bool integral = true;
    if (s_[i_] == '-') ++i_;
    auto digits = [&] {
      const std::size_t from = i_;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
      return i_ - from;
    };
    if (i_ < s_.size() && s_[i_] == '0') {
      ++i_;
    } else if (digits() == 0) {
      fail("expected digits");
    }
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      integral = false;
      if (digits() == 0) fail("expected digits after '.'");
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      integral = false;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (digits() == 0) fail("expected digits in the exponent");
    }
    const std::string_view text = s_.substr(start, i_ - start);
    Json out;
    out.type_ = Json::Type::Number;
    out.string_ = std::string(text);
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out.number_);
    if (ec != std::errc{} || end != text.data() + text.size()) {
      i_ = start;
      fail("number out of range");
    }
    if (integral) {
      std::int64_t v = 0;
      auto [iend, iec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (iec == std::errc{} && iend == text.data() + text.size()) out.integer_ = v;
    }
    return out;
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

Json::Json(std::int64_t v) : type_(Type::Number), number_(static_cast<double>(v)), integer_(v) {}

Json::Json(double v) : type_(Type::Number), number_(v) {
  if (std::isfinite(v) && v == std::trunc(v) && std::fabs(v) < 9.0e15) integer_ = static_cast<std::int64_t>(v);
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  string_.assign(buf, ec == std::errc{} ? end : buf);
}

Json::Json(float v) : type_(Type::Number), number_(v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  string_.assign(buf, ec == std::errc{} ? end : buf);
}

Json Json::parse(std::string_view text) { return JsonParser(text).document(); }

const char* Json::type_name(Type t) {
  switch (t) {
    case Type::Null: return "null";
    case Type::Bool: return "a boolean";
    case Type::Number: return "a number";
    case Type::String: return "a string";
    case Type::Array: return "an array";
    case Type::Object: return "an object";
  }
  return "?";
}

namespace {
[[noreturn]] void wrong_type(Json::Type want, Json::Type got) {
  throw JsonError(std::string("expected ") + Json::type_name(want) + ", got " + Json::type_name(got));
}
}  // namespace

bool Json::as_bool() const {
  if (type_ != Type::Bool) wrong_type(Type::Bool, type_);
  return bool_;
}
double Json::as_double() const {
  if (type_ != Type::Number) wrong_type(Type::Number, type_);
  return number_;
}
std::int64_t Json::as_int() const {
  if (!is_integer()) throw JsonError("expected an integer");
  return *integer_;
}
const std::string& Json::as_string() const {
  if (type_ != Type::String) wrong_type(Type::String, type_);
  return string_;
}
const Json::Array& Json::as_array() const {
  if (type_ != Type::Array) wrong_type(Type::Array, type_);
  return array_;
}
const Json::Object& Json::as_object() const {
  if (type_ != Type::Object) wrong_type(Type::Object, type_);
  return object_;
}
Json::Array& Json::as_array() {
  if (type_ != Type::Array) wrong_type(Type::Array, type_);
  return array_;
}
Json::Object& Json::as_object() {
  if (type_ != Type::Object) wrong_type(Type::Object, type_);
  return object_;
}

std::string Json::number_text() const {
  if (type_ != Type::Number) wrong_type(Type::Number, type_);
  if (!string_.empty()) return string_;
  return std::to_string(*integer_);
}

const Json* Json::find(std::string_view key) const {
  if (type_ != Type::Object) return nullptr;
  for (const auto& [k, v] : object_)
    if (k == key) return &v;
  return nullptr;
}

const Json& Json::get(std::string_view key) const {
  static const Json null;
  const Json* member = find(key);
  return member ? *member : null;
}

Json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  std::ostringstream text;
  text << in.rdbuf();
  try {
    return Json::parse(text.str());
  } catch (const JsonError& e) {
    throw FormatError(path + ": not valid JSON: " + e.what());
  }
}

Json& Json::operator[](std::string_view key) {
  auto& members = as_object();
  for (auto& [k, v] : members)
    if (k == key) return v;
  members.emplace_back(std::string(key), Json());
  return members.back().second;
}

void Json::push_back(Json value) { as_array().push_back(std::move(value)); }

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_sequence(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

void Json::dump_to(std::string& out) const {
  switch (type_) {
    case Type::Null: out += "null"; break;
    case Type::Bool: out += bool_ ? "true" : "false"; break;
    case Type::Number:
      if (!std::isfinite(number_)) out += "null";   // JSON has no NaN or infinity
      else out += number_text();
      break;
    case Type::String: unicode::append_json_string(out, string_); break;
    case Type::Array: {
      out += '[';
      for (std::size_t i = 0; i < array_.size(); ++i) {
        if (i) out += ',';
        array_[i].dump_to(out);
      }
      out += ']';
      break;
    }
    case Type::Object: {
      out += '{';
      for (std::size_t i = 0; i < object_.size(); ++i) {
        if (i) out += ',';
        unicode::append_json_string(out, object_[i].first);
        out += ':';
        object_[i].second.dump_to(out);
      }
      out += '}';
      break;
    }
  }
}

std::string Json::dump() const {
  std::string out;
  dump_to(out);
  return out;
}

}  // namespace bitrun
