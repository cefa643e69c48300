// Reading Hugging Face safetensors checkpoints: one `model.safetensors`, or shards listed by
// `model.safetensors.index.json`. A file is an 8-byte little-endian header length, a JSON header (each tensor's
// dtype, shape and [begin, end) byte range in the data that follows, plus optional "__metadata__"), then the data.
// Files are memory-mapped and validated when opened: every range inside the data, of exactly the size its dtype and
// shape ask, no two ranges overlapping. Nothing is read whole.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace bitrun {

namespace detail {
class FileMapping;   // core/src/file_mapping.hpp
}

enum class SafetensorsDtype { F64, F32, F16, BF16, I64, I32, I16, I8, U8, Bool };

// "F32", "BF16", ... as the header spells them.
const char* safetensors_dtype_name(SafetensorsDtype dtype);
std::size_t safetensors_dtype_bytes(SafetensorsDtype dtype);

struct SafetensorsTensor {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::F32;
  std::vector<std::int64_t> shape;   // outermost first (PyTorch order)
  const std::uint8_t* data = nullptr;
  std::uint64_t bytes = 0;
  std::string file;                  // the file it came from (for messages)

  std::int64_t elements() const;
  // Values as float32 (F32, F16, BF16, F64; integer types are refused with an error naming the tensor).
  std::vector<float> to_floats() const;
};

class SafetensorsFile {
 public:
  // Maps and validates the file. Throws FormatError naming the file and the defect (or Error if unreadable).
  static std::unique_ptr<SafetensorsFile> open(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  std::unique_ptr<detail::FileMapping> map_;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint folder: model.safetensors, or the shards its index names (every tensor in the file
// the index assigns it to, no tensor twice).
class SafetensorsCheckpoint {
 public:
  static SafetensorsCheckpoint open(const std::filesystem::path& dir);

  // By name; nullptr when absent.
  const SafetensorsTensor* find(const std::string& name) const;
  // Every tensor, in name order.
  std::vector<const SafetensorsTensor*> tensors() const;
  std::uint64_t total_bytes() const;

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsTensor*> by_name_;
};

}  // namespace bitrun
