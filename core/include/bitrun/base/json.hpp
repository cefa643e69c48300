// A small strict JSON value (RFC 8259) for the HTTP API and for model import (config.json, tokenizer.json): Debian's
// Boost 1.74 ships no Boost.JSON and nothing else in the dependency list parses JSON. The parser rejects what the
// RFC does not allow (trailing commas, comments, bad escapes, invalid UTF-8, duplicate keys, nesting deeper than 64)
// with an error that gives the byte offset.
// Objects keep insertion order, so responses come out in the order OpenAI documents them.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bitrun {

class JsonError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Json {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };
  using Array = std::vector<Json>;
  using Object = std::vector<std::pair<std::string, Json>>;

  Json() = default;
  Json(std::nullptr_t) {}
  Json(bool b) : type_(Type::Bool), bool_(b) {}
  Json(int v) : Json(static_cast<std::int64_t>(v)) {}
  Json(std::int64_t v);
  Json(std::uint64_t v) : Json(static_cast<std::int64_t>(v)) {}
  Json(double v);
  Json(float v);   // shortest text that reads back as the same float
  Json(std::string s) : type_(Type::String), string_(std::move(s)) {}
  Json(std::string_view s) : Json(std::string(s)) {}
  Json(const char* s) : Json(std::string(s)) {}
  Json(Array a) : type_(Type::Array), array_(std::move(a)) {}
  Json(Object o) : type_(Type::Object), object_(std::move(o)) {}
  static Json object() { return Json(Object{}); }
  static Json array() { return Json(Array{}); }

  // Parses exactly one JSON text (surrounding whitespace allowed). Throws JsonError("... at byte N").
  static Json parse(std::string_view text);

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_bool() const { return type_ == Type::Bool; }
  bool is_number() const { return type_ == Type::Number; }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }
  // A number written without fraction or exponent that fits in 64 bits (or a whole double built in code).
  bool is_integer() const { return type_ == Type::Number && integer_.has_value(); }

  bool as_bool() const;
  double as_double() const;
  std::int64_t as_int() const;   // requires is_integer()
  const std::string& as_string() const;
  const Array& as_array() const;
  const Object& as_object() const;
  Array& as_array();
  Object& as_object();
  // The number as written in the request ("0.90"), or as this writer prints it.
  std::string number_text() const;

  // Object member, or nullptr.
  const Json* find(std::string_view key) const;
  // Object member, or a null value when absent or when this is not an object (reading optional fields of a file
  // whose shape is not trusted).
  const Json& get(std::string_view key) const;
  // Object member, inserted as null when absent (the value must be an object).
  Json& operator[](std::string_view key);
  void push_back(Json value);   // the value must be an array

  // Compact JSON text. Strings are written as valid UTF-8 (ill-formed bytes become U+FFFD).
  std::string dump() const;
  void dump_to(std::string& out) const;

  static const char* type_name(Type t);

 private:
  Type type_ = Type::Null;
  bool bool_ = false;
  double number_ = 0.0;
  std::optional<std::int64_t> integer_;
  std::string string_;   // the string, or a number's source text
  Array array_;
  Object object_;
  friend class JsonParser;
};

// The JSON text of a file: Error "<path>: cannot open" when unreadable, FormatError "<path>: not valid JSON: ..."
// when malformed.
Json read_json_file(const std::string& path);   // (a string: <filesystem> here would bring std::quoted into reach)

// True when `s` is well-formed UTF-8.
bool valid_utf8(std::string_view s);

}  // namespace bitrun
