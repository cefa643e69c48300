#include "bitrun/import/safetensors.hpp"

#include <algorithm>
#include <cstring>

#include "bitrun/base/error.hpp"
#include "bitrun/gguf/ggml_types.hpp"
#include "bitrun/base/json.hpp"
#include "base/file_mapping.hpp"

namespace bitrun {
namespace {

// A header larger than this is not a checkpoint header (the spec's own limit is 100 MB).
constexpr std::uint64_t kMaxHeaderBytes = 100ull << 20;

struct DtypeInfo {
  SafetensorsDtype dtype;
  const char* name;
  std::size_t bytes;
};
constexpr DtypeInfo kDtypes[] = {
    {SafetensorsDtype::F64, "F64", 8}, {SafetensorsDtype::F32, "F32", 4},   {SafetensorsDtype::F16, "F16", 2},
    {SafetensorsDtype::BF16, "BF16", 2}, {SafetensorsDtype::I64, "I64", 8}, {SafetensorsDtype::I32, "I32", 4},
    {SafetensorsDtype::I16, "I16", 2}, {SafetensorsDtype::I8, "I8", 1},     {SafetensorsDtype::U8, "U8", 1},
    {SafetensorsDtype::Bool, "BOOL", 1}};

const DtypeInfo& info(SafetensorsDtype d) {
  for (const auto& i : kDtypes)
    if (i.dtype == d) return i;
  throw Error("unknown safetensors dtype");
}


}  // namespace

const char* safetensors_dtype_name(SafetensorsDtype dtype) { return info(dtype).name; }
std::size_t safetensors_dtype_bytes(SafetensorsDtype dtype) { return info(dtype).bytes; }

std::int64_t SafetensorsTensor::elements() const {
  std::int64_t n = 1;
  for (std::int64_t d : shape) n *= d;
  return n;
}

std::vector<float> SafetensorsTensor::to_floats() const {
  const auto n = static_cast<std::size_t>(elements());
  std::vector<float> out(n);
  switch (dtype) {
    case SafetensorsDtype::F32: std::memcpy(out.data(), data, n * 4); break;
    case SafetensorsDtype::F64:
      for (std::size_t i = 0; i < n; ++i) {
        double v;
        std::memcpy(&v, data + i * 8, 8);
        out[i] = static_cast<float>(v);
      }
      break;
    case SafetensorsDtype::F16: fp16_to_f32_array(data, static_cast<std::int64_t>(n), out.data()); break;
    case SafetensorsDtype::BF16:
      for (std::size_t i = 0; i < n; ++i) {
        std::uint16_t b;
        std::memcpy(&b, data + i * 2, 2);
        out[i] = bf16_to_f32(b);
      }
      break;
    default:
      throw FormatError(file + ": tensor '" + name + "' has dtype " + safetensors_dtype_name(dtype) +
                        ", where float values (F32, F16, BF16) are expected");
  }
  return out;
}

SafetensorsFile::~SafetensorsFile() = default;

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  const std::string name = path.string();
  auto fail = [&](const std::string& what) -> void { throw FormatError(name + ": " + what); };
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->map_ = detail::FileMapping::open(path, "checkpoint file", 8,
                                      "for a safetensors file (the header length alone is 8)");
  const std::uint64_t file_size = f->map_->size();
  const std::uint8_t* bytes = f->map_->bytes();
  std::uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | bytes[i];
  if (header_len > kMaxHeaderBytes || header_len > file_size - 8)
    fail("header length " + std::to_string(header_len) + " runs past the end of the file (" +
         std::to_string(file_size) + " bytes)");
  Json header;
  try {
    header = Json::parse(std::string_view(reinterpret_cast<const char*>(bytes + 8), header_len));
  } catch (const JsonError& e) {
    fail(std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail("header is not a JSON object");
  const std::uint8_t* data = bytes + 8 + header_len;
  const std::uint64_t data_size = file_size - 8 - header_len;

  for (const auto& [key, value] : header.as_object()) {
    if (key == "__metadata__") {
      if (!value.is_object()) fail("__metadata__ is not an object");
      for (const auto& [k, v] : value.as_object()) {
        if (!v.is_string()) fail("__metadata__ value '" + k + "' is not a string");
        f->metadata_[k] = v.as_string();
      }
      continue;
    }
    const std::string what = "tensor '" + key + "'";
    if (!value.is_object()) fail(what + " is not described by an object");
    const Json* dtype = value.find("dtype");
    const Json* shape = value.find("shape");
    const Json* offsets = value.find("data_offsets");
    if (!dtype || !dtype->is_string()) fail(what + " has no dtype string");
    if (!shape || !shape->is_array()) fail(what + " has no shape array");
    if (!offsets || !offsets->is_array() || offsets->as_array().size() != 2) fail(what + " has no [begin, end] data_offsets");
    SafetensorsTensor t;
    t.name = key;
    t.file = name;
    const DtypeInfo* di = nullptr;
    for (const auto& i : kDtypes)
      if (dtype->as_string() == i.name) di = &i;
    if (!di) fail(what + " has unsupported dtype '" + dtype->as_string() + "' (F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)");
    t.dtype = di->dtype;
    std::uint64_t elements = 1;
    for (const Json& d : shape->as_array()) {
      if (!d.is_integer() || d.as_int() < 0 || d.as_int() > (std::int64_t{1} << 40))
        fail(what + " has an invalid dimension in its shape");
      t.shape.push_back(d.as_int());
      if (d.as_int() != 0 && elements > (std::uint64_t{1} << 50) / static_cast<std::uint64_t>(d.as_int()))
        fail(what + " has more elements than any file can hold");
      elements *= static_cast<std::uint64_t>(d.as_int());
    }
    const Json& b = offsets->as_array()[0];
    const Json& e = offsets->as_array()[1];
    if (!b.is_integer() || !e.is_integer() || b.as_int() < 0 || e.as_int() < b.as_int())
      fail(what + " has invalid data_offsets");
    const auto begin = static_cast<std::uint64_t>(b.as_int()), end = static_cast<std::uint64_t>(e.as_int());
    if (end > data_size)
      fail(what + " ends at byte " + std::to_string(end) + " of the data, which has " + std::to_string(data_size) +
           " (truncated file?)");
    if (end - begin != elements * di->bytes)
      fail(what + " holds " + std::to_string(end - begin) + " bytes; its dtype and shape need " +
           std::to_string(elements * di->bytes));
    t.data = data + begin;
    t.bytes = end - begin;
    f->tensors_.push_back(std::move(t));
  }
  // Ranges must not overlap (a tensor written over another would be read as two).
  std::vector<const SafetensorsTensor*> order;
  for (const auto& t : f->tensors_) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](auto* x, auto* y) { return x->data < y->data; });
  for (std::size_t i = 1; i < order.size(); ++i)
    if (order[i - 1]->data + order[i - 1]->bytes > order[i]->data)
      fail("tensors '" + order[i - 1]->name + "' and '" + order[i]->name + "' overlap");
  return f;
}

SafetensorsCheckpoint SafetensorsCheckpoint::open(const std::filesystem::path& dir) {
  SafetensorsCheckpoint c;
  const auto single = dir / "model.safetensors";
  const auto index = dir / "model.safetensors.index.json";
  if (std::filesystem::exists(index)) {
    const Json j = read_json_file(index.string());
    const Json* map = j.is_object() ? j.find("weight_map") : nullptr;
    if (!map || !map->is_object()) throw FormatError(index.string() + ": no weight_map object");
    std::map<std::string, std::size_t> file_of;   // shard name -> index in files_
    for (const auto& [tensor, shard] : map->as_object()) {
      if (!shard.is_string() || shard.as_string().find('/') != std::string::npos || shard.as_string().empty())
        throw FormatError(index.string() + ": tensor '" + tensor + "' maps to an invalid file name");
      if (!file_of.count(shard.as_string())) {
        file_of[shard.as_string()] = c.files_.size();
        c.files_.push_back(SafetensorsFile::open(dir / shard.as_string()));
      }
    }
    for (const auto& [tensor, shard] : map->as_object()) {
      const SafetensorsFile& f = *c.files_[file_of[shard.as_string()]];
      const std::string& wanted = tensor;   // (a structured binding cannot be captured before C++20 in clang 14)
      const auto it = std::find_if(f.tensors().begin(), f.tensors().end(), [&](auto& t) { return t.name == wanted; });
      if (it == f.tensors().end())
        throw FormatError(index.string() + ": tensor '" + tensor + "' is not in " + shard.as_string());
      c.by_name_[tensor] = &*it;
    }
    for (const auto& f : c.files_)
      for (const auto& t : f->tensors()) {
        const auto it = c.by_name_.find(t.name);
        if (it == c.by_name_.end())
          throw FormatError(t.file + ": tensor '" + t.name + "' is not listed in the index");
        if (it->second != &t) throw FormatError(t.file + ": tensor '" + t.name + "' also appears in another shard");
      }
  } else if (std::filesystem::exists(single)) {
    c.files_.push_back(SafetensorsFile::open(single));
    for (const auto& t : c.files_[0]->tensors()) c.by_name_[t.name] = &t;
  } else {
    throw Error(dir.string() + ": neither model.safetensors nor model.safetensors.index.json");
  }
  return c;
}

const SafetensorsTensor* SafetensorsCheckpoint::find(const std::string& name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

std::vector<const SafetensorsTensor*> SafetensorsCheckpoint::tensors() const {
  std::vector<const SafetensorsTensor*> out;
  for (const auto& [name, t] : by_name_) out.push_back(t);
  return out;
}

std::uint64_t SafetensorsCheckpoint::total_bytes() const {
  std::uint64_t n = 0;
  for (const auto& [name, t] : by_name_) n += t->bytes;
  return n;
}

}  // namespace bitrun
