// GgufValue constructors and the names of GGUF value types (for error messages and `bitrun info`).
#include "bitrun/gguf/gguf.hpp"

namespace bitrun {

const char* gguf_value_type_name(GgufValueType type) {
  switch (type) {
    case GgufValueType::U8: return "uint8";
    case GgufValueType::I8: return "int8";
    case GgufValueType::U16: return "uint16";
    case GgufValueType::I16: return "int16";
    case GgufValueType::U32: return "uint32";
    case GgufValueType::I32: return "int32";
    case GgufValueType::F32: return "float32";
    case GgufValueType::BOOL: return "bool";
    case GgufValueType::STRING: return "string";
    case GgufValueType::ARRAY: return "array";
    case GgufValueType::U64: return "uint64";
    case GgufValueType::I64: return "int64";
    case GgufValueType::F64: return "float64";
  }
  return "unknown";
}

GgufValue GgufValue::u32(std::uint32_t v) {
  GgufValue g;
  g.type = GgufValueType::U32;
  g.scalar = std::uint64_t{v};
  return g;
}

GgufValue GgufValue::i32(std::int32_t v) {
  GgufValue g;
  g.type = GgufValueType::I32;
  g.scalar = std::int64_t{v};
  return g;
}

GgufValue GgufValue::u64(std::uint64_t v) {
  GgufValue g;
  g.type = GgufValueType::U64;
  g.scalar = v;
  return g;
}

GgufValue GgufValue::f32(float v) {
  GgufValue g;
  g.type = GgufValueType::F32;
  g.scalar = static_cast<double>(v);
  return g;
}

GgufValue GgufValue::boolean(bool v) {
  GgufValue g;
  g.type = GgufValueType::BOOL;
  g.scalar = v;
  return g;
}

GgufValue GgufValue::string(std::string v) {
  GgufValue g;
  g.type = GgufValueType::STRING;
  g.scalar = std::move(v);
  return g;
}

GgufValue GgufValue::string_array(std::vector<std::string> v) {
  GgufValue g;
  g.type = GgufValueType::ARRAY;
  g.elem_type = GgufValueType::STRING;
  g.strings = std::move(v);
  return g;
}

GgufValue GgufValue::f32_array(const std::vector<float>& v) {
  GgufValue g;
  g.type = GgufValueType::ARRAY;
  g.elem_type = GgufValueType::F32;
  g.numbers.assign(v.begin(), v.end());
  return g;
}

GgufValue GgufValue::i32_array(const std::vector<std::int32_t>& v) {
  GgufValue g;
  g.type = GgufValueType::ARRAY;
  g.elem_type = GgufValueType::I32;
  g.numbers.assign(v.begin(), v.end());
  return g;
}

std::size_t GgufValue::array_size() const {
  if (type != GgufValueType::ARRAY) return 0;
  if (elem_type == GgufValueType::STRING) return strings.size();
  if (elem_type == GgufValueType::ARRAY) return arrays.size();
  return numbers.size();
}

std::int64_t GgufTensorInfo::n_elements() const {
  std::int64_t n = 1;
  for (std::int64_t d : ne) n *= d;   // the reader rejected shapes whose product overflows
  return n;
}

std::int64_t GgufTensorInfo::n_rows() const {
  std::int64_t n = 1;
  for (std::size_t i = 1; i < ne.size(); ++i) n *= ne[i];
  return n;
}

}  // namespace bitrun
