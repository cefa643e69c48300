#include "base/file_mapping.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "bitrun/base/error.hpp"

namespace bitrun::detail {

std::unique_ptr<FileMapping> FileMapping::open(const std::filesystem::path& path, const std::string& what,
                                               std::uint64_t min_size, const std::string& too_small) {
  const std::string name = path.string();
  const int fd = ::open(name.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(name + ": cannot open " + what + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(name + ": not a regular file");
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size < min_size || size == 0) {
    ::close(fd);
    throw FormatError(name + ": " + std::to_string(size) + " bytes is too small " + too_small);
  }
  std::unique_ptr<FileMapping> m(new FileMapping());
  m->size_ = size;
  m->addr_ = ::mmap(nullptr, static_cast<std::size_t>(size), PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m->addr_ == MAP_FAILED) {
    m->addr_ = nullptr;
    throw Error(name + ": cannot map " + what + ": " + std::strerror(errno));
  }
  return m;
}

FileMapping::~FileMapping() {
  if (addr_) ::munmap(addr_, static_cast<std::size_t>(size_));
}

void FileMapping::release(std::uint64_t begin, std::uint64_t end) const {
  if (end > begin) ::madvise(static_cast<std::uint8_t*>(addr_) + begin, end - begin, MADV_DONTNEED);
}

}  // namespace bitrun::detail
