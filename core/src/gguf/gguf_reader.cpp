// GgufFile: maps a GGUF file read-only and validates all of it before handing anything out. Every read goes
// through Cursor, which checks the bytes left first, so a truncated or hostile file yields a FormatError naming
// the offset and the problem instead of an out-of-bounds read.
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "bitrun/base/error.hpp"
#include "bitrun/gguf/gguf.hpp"
#include "base/file_mapping.hpp"
#include "gguf/ggml_codecs.hpp"
#include "gguf/mapping_guard.hpp"

namespace bitrun {
namespace {

constexpr std::uint64_t kMaxStringBytes = std::uint64_t{1} << 30;   // as candle: no sane key or token is larger
constexpr std::uint64_t kMaxArrayElems = std::uint64_t{1} << 30;
constexpr int kMaxArrayDepth = 64;
constexpr std::uint32_t kMaxDims = 4;
// Decoded metadata may be larger than its encoding (a 12-byte empty array becomes a GgufValue): this caps the
// memory a crafted file can make the reader allocate. Real vocabularies take a few tens of MiB.
constexpr std::uint64_t kMaxDecodedMetadataBytes = std::uint64_t{512} << 20;
constexpr std::uint64_t kMaxTensorName = 1024;

// Architectures whose files come from bitnet.cpp, where type id 36 means I2_S. Upstream ggml gave 36 to other
// (repacked, never stored) types, so elsewhere the id is refused rather than guessed.
bool arch_uses_i2s(const std::string& arch) {
  return arch == "bitnet" || arch == "bitnet-b1.58" || arch == "bitnet-25";
}

// Names of ggml types bitrun does not read, so the error says what the file holds.
const char* unsupported_ggml_type_name(std::uint32_t id) {
  static const char* names[] = {nullptr, nullptr, "q4_0", "q4_1", "q4_2", "q4_3", "q5_0", "q5_1", nullptr, "q8_1",
                                "q2_k", "q3_k", "q4_k", "q5_k", nullptr, "q8_k", "iq2_xxs", "iq2_xs", "iq3_xxs",
                                "iq1_s", "iq4_nl", "iq3_s", "iq2_s", "iq4_xs", "i8", "i16", "i32", "i64", "f64",
                                "iq1_m"};
  return id < std::size(names) ? names[id] : nullptr;
}

class Cursor {
 public:
  Cursor(const std::uint8_t* data, std::uint64_t size, const std::string& path) : p_(data), size_(size), path_(path) {}

  std::uint64_t pos() const { return pos_; }

  // Accounts `bytes` of decoded metadata against kMaxDecodedMetadataBytes.
  void charge(std::uint64_t bytes) {
    decoded_ += bytes;
    if (decoded_ > kMaxDecodedMetadataBytes)
      fail("metadata would take more than " + std::to_string(kMaxDecodedMetadataBytes >> 20) + " MiB decoded");
  }
  std::uint64_t left() const { return size_ - pos_; }

  [[noreturn]] void fail(const std::string& what) const {
    throw FormatError(path_ + ": at byte " + std::to_string(pos_) + ": " + what);
  }

  void need(std::uint64_t n, const char* what) const {
    if (n > left())
      fail(std::string("file ends inside ") + what + " (needs " + std::to_string(n) + " bytes, " +
           std::to_string(left()) + " left): the file is truncated or corrupt");
  }

  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v = detail::load_le<T>(p_ + pos_);
    pos_ += sizeof(T);
    return v;
  }

  std::string string(const char* what) {
    const auto len = read<std::uint64_t>(what);
    if (len > kMaxStringBytes) fail(std::string(what) + " claims " + std::to_string(len) + " bytes");
    need(len, what);
    std::string s(reinterpret_cast<const char*>(p_ + pos_), static_cast<std::size_t>(len));
    pos_ += len;
    return s;
  }

 private:
  const std::uint8_t* p_;
  std::uint64_t size_, pos_ = 0, decoded_ = 0;
  const std::string& path_;
};

bool valid_value_type(std::uint32_t t) { return t <= static_cast<std::uint32_t>(GgufValueType::F64); }

// Smallest encoding of one element of this type, to bound array counts by the bytes left before allocating.
std::uint64_t min_encoded_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8: case GgufValueType::I8: case GgufValueType::BOOL: return 1;
    case GgufValueType::U16: case GgufValueType::I16: return 2;
    case GgufValueType::U32: case GgufValueType::I32: case GgufValueType::F32: return 4;
    case GgufValueType::STRING: case GgufValueType::U64: case GgufValueType::I64: case GgufValueType::F64: return 8;
    case GgufValueType::ARRAY: return 12;
  }
  return 1;
}

// Reads one scalar of type t as the variant alternative its kind uses.
std::variant<std::uint64_t, std::int64_t, double, bool, std::string> read_scalar(Cursor& c, GgufValueType t) {
  switch (t) {
    case GgufValueType::U8: return std::uint64_t{c.read<std::uint8_t>("a uint8 value")};
    case GgufValueType::I8: return std::int64_t{c.read<std::int8_t>("an int8 value")};
    case GgufValueType::U16: return std::uint64_t{c.read<std::uint16_t>("a uint16 value")};
    case GgufValueType::I16: return std::int64_t{c.read<std::int16_t>("an int16 value")};
    case GgufValueType::U32: return std::uint64_t{c.read<std::uint32_t>("a uint32 value")};
    case GgufValueType::I32: return std::int64_t{c.read<std::int32_t>("an int32 value")};
    case GgufValueType::U64: return c.read<std::uint64_t>("a uint64 value");
    case GgufValueType::I64: return c.read<std::int64_t>("an int64 value");
    case GgufValueType::F32: return static_cast<double>(c.read<float>("a float32 value"));
    case GgufValueType::F64: return c.read<double>("a float64 value");
    case GgufValueType::BOOL: {
      const auto b = c.read<std::uint8_t>("a bool value");
      if (b > 1) c.fail("bool value " + std::to_string(b) + " is neither 0 nor 1");
      return b == 1;
    }
    case GgufValueType::STRING: return c.string("a string value");
    case GgufValueType::ARRAY: break;
  }
  c.fail("internal: scalar read of an array");
}

double as_number(const std::variant<std::uint64_t, std::int64_t, double, bool, std::string>& v) {
  if (auto* u = std::get_if<std::uint64_t>(&v)) return static_cast<double>(*u);
  if (auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
  if (auto* b = std::get_if<bool>(&v)) return *b ? 1.0 : 0.0;
  return std::get<double>(v);
}

GgufValue read_value(Cursor& c, GgufValueType type, int depth) {
  GgufValue v;
  v.type = type;
  if (type != GgufValueType::ARRAY) {
    v.scalar = read_scalar(c, type);
    return v;
  }
  if (depth >= kMaxArrayDepth) c.fail("arrays nested deeper than " + std::to_string(kMaxArrayDepth));
  const auto elem = c.read<std::uint32_t>("an array element type");
  if (!valid_value_type(elem)) c.fail("unknown array element type " + std::to_string(elem));
  v.elem_type = static_cast<GgufValueType>(elem);
  const auto count = c.read<std::uint64_t>("an array length");
  if (count > kMaxArrayElems || count > c.left() / min_encoded_size(v.elem_type))
    c.fail("array of " + std::to_string(count) + " " + gguf_value_type_name(v.elem_type) +
           " elements does not fit in the " + std::to_string(c.left()) + " bytes left");
  const auto n = static_cast<std::size_t>(count);
  c.charge(count * (v.elem_type == GgufValueType::STRING  ? sizeof(std::string)
                    : v.elem_type == GgufValueType::ARRAY ? sizeof(GgufValue)
                                                          : sizeof(double)));
  if (v.elem_type == GgufValueType::STRING) {
    v.strings.reserve(n);
    for (std::size_t i = 0; i < n; ++i) v.strings.push_back(c.string("an array string"));
  } else if (v.elem_type == GgufValueType::ARRAY) {
    v.arrays.reserve(n);
    for (std::size_t i = 0; i < n; ++i) v.arrays.push_back(read_value(c, GgufValueType::ARRAY, depth + 1));
  } else {
    v.numbers.reserve(n);
    for (std::size_t i = 0; i < n; ++i) v.numbers.push_back(as_number(read_scalar(c, v.elem_type)));
  }
  return v;
}

bool is_integer_type(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8: case GgufValueType::I8: case GgufValueType::U16: case GgufValueType::I16:
    case GgufValueType::U32: case GgufValueType::I32: case GgufValueType::U64: case GgufValueType::I64: return true;
    default: return false;
  }
}

}  // namespace

GgufFile::GgufFile(GgufFile&&) noexcept = default;
GgufFile& GgufFile::operator=(GgufFile&&) noexcept = default;
GgufFile::~GgufFile() = default;

GgufFile GgufFile::open(const std::filesystem::path& path) {
  GgufFile f;
  f.path_ = path;
  const std::string name = path.string();

  f.map_ = detail::FileMapping::open(path, "model file", 24, "to be a GGUF file (header is 24)");
  f.size_ = f.map_->size();

  Cursor c(f.map_->bytes(), f.size_, name);
  if (std::memcmp(f.map_->bytes(), "GGUF", 4) != 0) c.fail("not a GGUF file (magic is not 'GGUF')");
  c.read<std::uint32_t>("the magic");
  f.version_ = c.read<std::uint32_t>("the version");
  if (f.version_ == 1) c.fail("GGUF version 1 is obsolete and not supported (re-convert the model to v3)");
  if (f.version_ != 2 && f.version_ != 3) c.fail("unsupported GGUF version " + std::to_string(f.version_));
  const auto n_tensors = c.read<std::uint64_t>("the tensor count");
  const auto n_kv = c.read<std::uint64_t>("the metadata count");
  // A key-value pair takes at least 13 bytes and a tensor description at least 33: bound both before reserving.
  if (n_kv > c.left() / 13) c.fail("metadata count " + std::to_string(n_kv) + " is impossible for the file size");
  if (n_tensors > c.left() / 33) c.fail("tensor count " + std::to_string(n_tensors) + " is impossible for the file size");

  f.kv_.reserve(static_cast<std::size_t>(n_kv));
  for (std::uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.string("a metadata key");
    if (key.empty()) c.fail("metadata key " + std::to_string(i) + " is empty");
    const auto type = c.read<std::uint32_t>("a metadata value type");
    if (!valid_value_type(type)) c.fail("metadata key '" + key + "' has unknown value type " + std::to_string(type));
    GgufValue value = read_value(c, static_cast<GgufValueType>(type), 0);
    if (!f.kv_index_.emplace(key, f.kv_.size()).second) c.fail("metadata key '" + key + "' appears twice");
    f.kv_.emplace_back(std::move(key), std::move(value));
  }

  if (const GgufValue* a = f.find("general.alignment")) {
    if (!is_integer_type(a->type)) c.fail("general.alignment must be an integer");
    const double v = as_number(a->scalar);
    if (!(v >= 1 && v <= (1 << 30)) || (static_cast<std::uint64_t>(v) & (static_cast<std::uint64_t>(v) - 1)) != 0)
      c.fail("general.alignment " + std::to_string(v) + " is not a power of two");
    f.alignment_ = static_cast<std::uint64_t>(v);
  }
  const std::string arch = f.opt_string("general.architecture").value_or("");

  f.tensors_.reserve(static_cast<std::size_t>(n_tensors));
  for (std::uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.name = c.string("a tensor name");
    if (t.name.empty() || t.name.size() > kMaxTensorName)
      c.fail("tensor " + std::to_string(i) + " has a name of " + std::to_string(t.name.size()) + " bytes");
    const std::string tn = "tensor '" + t.name + "'";
    const auto n_dims = c.read<std::uint32_t>("a tensor's dimension count");
    if (n_dims == 0 || n_dims > kMaxDims) c.fail(tn + " has " + std::to_string(n_dims) + " dimensions (1 to 4 allowed)");
    std::int64_t elements = 1;
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      const auto ne = c.read<std::uint64_t>("a tensor dimension");
      if (ne == 0 || ne > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ||
          __builtin_mul_overflow(elements, static_cast<std::int64_t>(ne), &elements))
        c.fail(tn + " has dimension " + std::to_string(d) + " = " + std::to_string(ne) +
               (ne == 0 ? " (empty tensors are not supported)" : ": the element count overflows"));
      t.ne.push_back(static_cast<std::int64_t>(ne));
    }
    const auto type_id = c.read<std::uint32_t>("a tensor type");
    std::optional<GgmlType> type = ggml_type_from_id(type_id);
    if (type == GgmlType::I2_S && !arch_uses_i2s(arch))
      c.fail(tn + " has type id 36, which is I2_S only in bitnet.cpp files (architectures bitnet, bitnet-b1.58, "
                  "bitnet-25); this file's architecture is '" + arch + "', so the type is ambiguous");
    if (!type) {
      const char* known = unsupported_ggml_type_name(type_id);
      c.fail(tn + " has type " + (known ? std::string(known) + " (id " + std::to_string(type_id) + ")"
                                          : "id " + std::to_string(type_id)) +
             ", which bitrun does not read (supported: f32, f16, bf16, q8_0, q6_k, tq1_0, tq2_0, i2_s); "
             "re-encode it with `bitrun convert` from a float source");
    }
    t.type = *type;
    t.offset = c.read<std::uint64_t>("a tensor offset");
    try {
      t.bytes = tensor_bytes(t.type, t.row_len(), t.n_rows());
    } catch (const FormatError& e) {
      c.fail(tn + ": " + e.what());
    }
    if (t.offset % f.alignment_ != 0)
      c.fail(tn + " offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
             std::to_string(f.alignment_));
    if (!f.tensor_index_.emplace(t.name, f.tensors_.size()).second) c.fail(tn + " appears twice");
    f.tensors_.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment after the tensor descriptions.
  f.data_offset_ = (c.pos() + f.alignment_ - 1) / f.alignment_ * f.alignment_;
  if (f.data_offset_ > f.size_ && !f.tensors_.empty())
    throw FormatError(name + ": the file ends before its data section (truncated)");
  const std::uint64_t data_size = f.size_ > f.data_offset_ ? f.size_ - f.data_offset_ : 0;
  std::vector<const GgufTensorInfo*> by_offset;
  for (const auto& t : f.tensors_) {
    if (t.offset > data_size || t.bytes > data_size - t.offset)
      throw FormatError(name + ": tensor '" + t.name + "' (" + std::to_string(t.bytes) + " bytes at data offset " +
                        std::to_string(t.offset) + ") extends past the end of the file (data section holds " +
                        std::to_string(data_size) + " bytes): the file is truncated or corrupt");
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  for (std::size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i]->offset < by_offset[i - 1]->offset + by_offset[i - 1]->bytes)
      throw FormatError(name + ": tensors '" + by_offset[i - 1]->name + "' and '" + by_offset[i]->name +
                        "' overlap in the data section");
  return f;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

namespace {

[[noreturn]] void wrong_type(const std::filesystem::path& path, const std::string& key, const GgufValue& v,
                             const char* expected) {
  std::string got = gguf_value_type_name(v.type);
  if (v.type == GgufValueType::ARRAY) got += std::string(" of ") + gguf_value_type_name(v.elem_type);
  throw FormatError(path.string() + ": metadata key '" + key + "' is a " + got + ", expected " + expected);
}

}  // namespace

std::optional<std::string> GgufFile::opt_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::STRING) wrong_type(path_, key, *v, "a string");
  return std::get<std::string>(v->scalar);
}

std::optional<std::uint64_t> GgufFile::opt_u64(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (!is_integer_type(v->type)) wrong_type(path_, key, *v, "an integer");
  if (auto* i = std::get_if<std::int64_t>(&v->scalar)) {
    if (*i < 0) throw FormatError(path_.string() + ": metadata key '" + key + "' is negative (" + std::to_string(*i) + ")");
    return static_cast<std::uint64_t>(*i);
  }
  return std::get<std::uint64_t>(v->scalar);
}

std::optional<std::int64_t> GgufFile::opt_i64(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (!is_integer_type(v->type)) wrong_type(path_, key, *v, "an integer");
  if (auto* u = std::get_if<std::uint64_t>(&v->scalar)) {
    if (*u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      throw FormatError(path_.string() + ": metadata key '" + key + "' is too large");
    return static_cast<std::int64_t>(*u);
  }
  return std::get<std::int64_t>(v->scalar);
}

std::optional<double> GgufFile::opt_f64(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (!is_integer_type(v->type) && v->type != GgufValueType::F32 && v->type != GgufValueType::F64)
    wrong_type(path_, key, *v, "a number");
  return as_number(v->scalar);
}

std::optional<bool> GgufFile::opt_bool(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::BOOL) wrong_type(path_, key, *v, "a bool");
  return std::get<bool>(v->scalar);
}

const std::vector<std::string>* GgufFile::opt_string_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return nullptr;
  if (v->type != GgufValueType::ARRAY || v->elem_type != GgufValueType::STRING)
    wrong_type(path_, key, *v, "an array of strings");
  return &v->strings;
}

const std::vector<double>* GgufFile::opt_number_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return nullptr;
  if (v->type != GgufValueType::ARRAY || v->elem_type == GgufValueType::STRING ||
      v->elem_type == GgufValueType::ARRAY)
    wrong_type(path_, key, *v, "an array of numbers");
  return &v->numbers;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const std::uint8_t* GgufFile::tensor_data(const GgufTensorInfo& t) const {
  return map_->bytes() + data_offset_ + t.offset;
}

void GgufFile::copy_tensor_bytes(const GgufTensorInfo& t, std::uint64_t offset, std::size_t n, void* dst) const {
  if (offset > t.bytes || n > t.bytes - offset) throw Error(t.name + ": read past the end of the tensor");
  if (!detail::copy_from_mapping(dst, tensor_data(t) + offset, n))
    throw Error(path_.string() + " changed on disk while in use (truncated or rewritten; reading " + t.name +
                "): restart bitrun to load it again");
}

void GgufFile::release(const GgufTensorInfo& t) const {
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  const std::uint64_t begin = (data_offset_ + t.offset + page - 1) / page * page;   // whole pages inside the tensor
  const std::uint64_t end = (data_offset_ + t.offset + t.bytes) / page * page;
  map_->release(begin, end);
}

}  // namespace bitrun
