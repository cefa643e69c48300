// A regular file mapped read-only, as the GGUF and safetensors readers use it: opened, checked to be a regular file
// of at least a minimum size, mapped, and unmapped when destroyed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace bitrun::detail {

class FileMapping {
 public:
  // Throws Error ("<path>: cannot open <what>: <reason>", "not a regular file", "cannot map <what>") or FormatError
  // when the file has fewer than min_size bytes ("<path>: N bytes is too small <too_small>").
  static std::unique_ptr<FileMapping> open(const std::filesystem::path& path, const std::string& what,
                                           std::uint64_t min_size, const std::string& too_small);
  ~FileMapping();
  FileMapping(const FileMapping&) = delete;
  FileMapping& operator=(const FileMapping&) = delete;

  const std::uint8_t* bytes() const { return static_cast<const std::uint8_t*>(addr_); }
  std::uint64_t size() const { return size_; }
  // Drops the pages of [begin, end) from memory (they read back from the file when touched again).
  void release(std::uint64_t begin, std::uint64_t end) const;

 private:
  FileMapping() = default;
  void* addr_ = nullptr;
  std::uint64_t size_ = 0;
};

}  // namespace bitrun::detail
