// GgufWriter: GGUF v3 output for `bitrun convert`, `bitrun synth`, the model trainer's export and the tests.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "bitrun/base/error.hpp"
#include "bitrun/gguf/gguf.hpp"
#include "gguf/ggml_codecs.hpp"

namespace bitrun {
namespace {

class Out {
 public:
  template <typename T>
  void put(T v) {
    bytes.resize(bytes.size() + sizeof(T));
    detail::store_le(bytes.data() + bytes.size() - sizeof(T), v);
  }
  void str(const std::string& s) {
    put<std::uint64_t>(s.size());
    bytes.insert(bytes.end(), s.begin(), s.end());
  }
  void pad_to(std::uint64_t alignment) {
    while (bytes.size() % alignment) bytes.push_back(0);
  }
  std::vector<std::uint8_t> bytes;
};

// Numbers are kept as double in GgufValue; each is written back in the element type it came with.
void put_number(Out& o, GgufValueType t, double v) {
  switch (t) {
    case GgufValueType::U8: o.put(static_cast<std::uint8_t>(v)); break;
    case GgufValueType::I8: o.put(static_cast<std::int8_t>(v)); break;
    case GgufValueType::U16: o.put(static_cast<std::uint16_t>(v)); break;
    case GgufValueType::I16: o.put(static_cast<std::int16_t>(v)); break;
    case GgufValueType::U32: o.put(static_cast<std::uint32_t>(v)); break;
    case GgufValueType::I32: o.put(static_cast<std::int32_t>(v)); break;
    case GgufValueType::U64: o.put(static_cast<std::uint64_t>(v)); break;
    case GgufValueType::I64: o.put(static_cast<std::int64_t>(v)); break;
    case GgufValueType::F32: o.put(static_cast<float>(v)); break;
    case GgufValueType::F64: o.put(v); break;
    case GgufValueType::BOOL: o.put(static_cast<std::uint8_t>(v != 0.0)); break;
    default: throw Error("GgufWriter: not a numeric type");
  }
}

void put_value(Out& o, const GgufValue& v) {
  switch (v.type) {
    case GgufValueType::STRING: o.str(std::get<std::string>(v.scalar)); return;
    case GgufValueType::BOOL: o.put(static_cast<std::uint8_t>(std::get<bool>(v.scalar))); return;
    case GgufValueType::U8: case GgufValueType::U16: case GgufValueType::U32: case GgufValueType::U64: {
      // Kept exact: a uint64 above 2^53 must not pass through double.
      const auto u = std::get<std::uint64_t>(v.scalar);
      if (v.type == GgufValueType::U64) o.put(u);
      else put_number(o, v.type, static_cast<double>(u));
      return;
    }
    case GgufValueType::I8: case GgufValueType::I16: case GgufValueType::I32: case GgufValueType::I64: {
      const auto i = std::get<std::int64_t>(v.scalar);
      if (v.type == GgufValueType::I64) o.put(i);
      else put_number(o, v.type, static_cast<double>(i));
      return;
    }
    case GgufValueType::F32: case GgufValueType::F64: put_number(o, v.type, std::get<double>(v.scalar)); return;
    case GgufValueType::ARRAY:
      o.put(static_cast<std::uint32_t>(v.elem_type));
      o.put(static_cast<std::uint64_t>(v.array_size()));
      if (v.elem_type == GgufValueType::STRING) {
        for (const auto& s : v.strings) o.str(s);
      } else if (v.elem_type == GgufValueType::ARRAY) {
        for (const auto& a : v.arrays) put_value(o, a);
      } else {
        for (double d : v.numbers) put_number(o, v.elem_type, d);
      }
      return;
  }
}

}  // namespace

GgufWriter::GgufWriter(std::uint64_t alignment) : alignment_(alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) throw Error("GGUF alignment must be a power of two");
  if (alignment != 32) set("general.alignment", GgufValue::u32(static_cast<std::uint32_t>(alignment)));
}

void GgufWriter::set(const std::string& key, GgufValue value) {
  for (auto& kv : kv_)
    if (kv.first == key) {
      kv.second = std::move(value);
      return;
    }
  kv_.emplace_back(key, std::move(value));
}

void GgufWriter::add_tensor(const std::string& name, std::vector<std::int64_t> ne, GgmlType type,
                            std::vector<std::uint8_t> data) {
  if (name.empty() || ne.empty() || ne.size() > 4) throw FormatError("tensor '" + name + "': bad name or rank");
  std::int64_t rows = 1;
  for (std::size_t i = 1; i < ne.size(); ++i) rows *= ne[i];
  const std::uint64_t need = tensor_bytes(type, ne[0], rows);
  if (data.size() != need)
    throw FormatError("tensor '" + name + "': " + std::to_string(data.size()) + " bytes given, " + type_traits(type).name +
                      " needs " + std::to_string(need));
  for (const auto& t : tensors_)
    if (t.name == name) throw FormatError("tensor '" + name + "' added twice");
  tensors_.push_back({name, std::move(ne), type, std::move(data)});
}

void GgufWriter::add_f32_tensor(const std::string& name, std::vector<std::int64_t> ne, const std::vector<float>& values) {
  std::vector<std::uint8_t> data(values.size() * sizeof(float));
  for (std::size_t i = 0; i < values.size(); ++i) detail::store_le(data.data() + i * sizeof(float), values[i]);
  add_tensor(name, std::move(ne), GgmlType::F32, std::move(data));
}

void GgufWriter::write(const std::filesystem::path& path) const {
  Out head;
  head.bytes = {'G', 'G', 'U', 'F'};
  head.put<std::uint32_t>(3);
  head.put<std::uint64_t>(tensors_.size());
  head.put<std::uint64_t>(kv_.size());
  for (const auto& [key, value] : kv_) {
    head.str(key);
    head.put(static_cast<std::uint32_t>(value.type));
    put_value(head, value);
  }
  std::uint64_t offset = 0;
  for (const auto& t : tensors_) {
    head.str(t.name);
    head.put(static_cast<std::uint32_t>(t.ne.size()));
    for (std::int64_t d : t.ne) head.put(static_cast<std::uint64_t>(d));
    head.put(static_cast<std::uint32_t>(t.type));
    head.put(offset);
    offset += (t.data.size() + alignment_ - 1) / alignment_ * alignment_;
  }
  head.pad_to(alignment_);

  const std::filesystem::path tmp = path.string() + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(tmp.string() + ": cannot create file");
    out.write(reinterpret_cast<const char*>(head.bytes.data()), static_cast<std::streamsize>(head.bytes.size()));
    static const char zeros[256] = {};
    for (const auto& t : tensors_) {
      out.write(reinterpret_cast<const char*>(t.data.data()), static_cast<std::streamsize>(t.data.size()));
      std::uint64_t pad = (alignment_ - t.data.size() % alignment_) % alignment_;
      while (pad > 0) {
        const auto chunk = std::min<std::uint64_t>(pad, sizeof zeros);
        out.write(zeros, static_cast<std::streamsize>(chunk));
        pad -= chunk;
      }
    }
    out.flush();
    if (!out) {
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      throw Error(tmp.string() + ": write failed (disk full?)");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw Error(path.string() + ": cannot move the written file into place: " + ec.message());
  }
}

}  // namespace bitrun
