// GGUF files (v2 and v3): a validating, memory-mapped reader and a writer.
//
// GgufFile::open checks everything before anything is used: every count and length is bounded by the file size,
// strings and arrays are capped, tensor names are unique, shapes do not overflow, types are known, and every
// tensor lies aligned inside the data section without overlapping another. A malformed file is a FormatError that
// names the file, the offset or tensor, and what is wrong; no read ever leaves the mapping.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "bitrun/gguf/ggml_types.hpp"

namespace bitrun {

namespace detail {
class FileMapping;   // core/src/file_mapping.hpp
}

enum class GgufValueType : std::uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8, ARRAY = 9, U64 = 10, I64 = 11,
  F64 = 12,
};

const char* gguf_value_type_name(GgufValueType type);

// A metadata value. Scalars keep their GGUF type so a file can be rewritten unchanged; arrays hold strings,
// numbers (any numeric element type, kept as double: exact for every integer up to 2^53 and every float) or
// nested arrays.
struct GgufValue {
  GgufValueType type = GgufValueType::U32;
  std::variant<std::uint64_t, std::int64_t, double, bool, std::string> scalar;  // by type: unsigned, signed, float
  GgufValueType elem_type = GgufValueType::U32;                                // for arrays
  std::vector<std::string> strings;                                            // STRING arrays
  std::vector<double> numbers;                                                 // numeric / BOOL arrays
  std::vector<GgufValue> arrays;                                               // ARRAY arrays

  static GgufValue u32(std::uint32_t v);
  static GgufValue i32(std::int32_t v);
  static GgufValue u64(std::uint64_t v);
  static GgufValue f32(float v);
  static GgufValue boolean(bool v);
  static GgufValue string(std::string v);
  static GgufValue string_array(std::vector<std::string> v);
  static GgufValue f32_array(const std::vector<float>& v);
  static GgufValue i32_array(const std::vector<std::int32_t>& v);

  std::size_t array_size() const;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<std::int64_t> ne;   // ne[0] = row length (innermost); at most 4 dimensions
  GgmlType type = GgmlType::F32;
  std::uint64_t offset = 0;       // from the start of the data section
  std::uint64_t bytes = 0;        // tensor_bytes(type, row_len, n_rows)

  std::int64_t n_elements() const;
  std::int64_t row_len() const { return ne.empty() ? 1 : ne[0]; }
  std::int64_t n_rows() const;    // product of ne[1..]
};

class GgufFile {
 public:
  // Maps and validates the file. Throws FormatError (or Error when the file cannot be opened).
  static GgufFile open(const std::filesystem::path& path);

  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;
  ~GgufFile();

  const std::filesystem::path& path() const { return path_; }
  std::uint32_t version() const { return version_; }
  std::uint64_t alignment() const { return alignment_; }
  std::uint64_t file_size() const { return size_; }

  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(const std::string& key) const;

  // Typed lookups: nullopt when the key is absent; FormatError naming the key when it has an incompatible type
  // (an integer key accepts any integer type whose value fits; a float key also accepts integers).
  std::optional<std::string> opt_string(const std::string& key) const;
  std::optional<std::uint64_t> opt_u64(const std::string& key) const;
  std::optional<std::int64_t> opt_i64(const std::string& key) const;
  std::optional<double> opt_f64(const std::string& key) const;
  std::optional<bool> opt_bool(const std::string& key) const;
  const std::vector<std::string>* opt_string_array(const std::string& key) const;
  const std::vector<double>* opt_number_array(const std::string& key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  // Start of the tensor's bytes inside the mapping (valid for t.bytes bytes while this object lives).
  const std::uint8_t* tensor_data(const GgufTensorInfo& t) const;
  // Tells the kernel this process no longer needs the tensor's pages (after the loader repacked it), so they stop
  // counting in its memory; touching the data again re-reads it from the file.
  void release(const GgufTensorInfo& t) const;
  // Copies bytes [offset, offset + n) of the tensor's data to dst. Throws Error naming the file when they cannot be
  // read because the file was truncated or replaced while mapped (instead of the SIGBUS a plain read would take).
  void copy_tensor_bytes(const GgufTensorInfo& t, std::uint64_t offset, std::size_t n, void* dst) const;

 private:
  GgufFile() = default;
  std::unique_ptr<detail::FileMapping> map_;
  std::filesystem::path path_;
  std::uint32_t version_ = 0;
  std::uint64_t alignment_ = 32, size_ = 0, data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, std::size_t> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, std::size_t> tensor_index_;
};

// Writes GGUF v3. Metadata keeps insertion order (setting a key again replaces its value in place); tensors are
// laid out in insertion order, each aligned. write() goes through a temporary file renamed into place, so a
// failed write never leaves a truncated model behind.
class GgufWriter {
 public:
  explicit GgufWriter(std::uint64_t alignment = 32);

  void set(const std::string& key, GgufValue value);
  // `data` must be exactly tensor_bytes(type, ne[0], product of ne[1..]) bytes; throws FormatError otherwise.
  void add_tensor(const std::string& name, std::vector<std::int64_t> ne, GgmlType type, std::vector<std::uint8_t> data);
  void add_f32_tensor(const std::string& name, std::vector<std::int64_t> ne, const std::vector<float>& values);

  void write(const std::filesystem::path& path) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<std::int64_t> ne;
    GgmlType type;
    std::vector<std::uint8_t> data;
  };
  std::uint64_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Tensor> tensors_;
};

}  // namespace bitrun
