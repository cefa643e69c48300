#include "bitrun/base/aligned.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

namespace bitrun {

void advise_huge_pages(void* data, std::size_t bytes) {
  constexpr std::uintptr_t kHugePage = std::uintptr_t{2} << 20;
  const auto begin = (reinterpret_cast<std::uintptr_t>(data) + kHugePage - 1) & ~(kHugePage - 1);
  const auto end = (reinterpret_cast<std::uintptr_t>(data) + bytes) & ~(kHugePage - 1);
  // Advice only: a kernel without transparent huge pages (or with them off) refuses it, and 4 KB pages still work.
  if (end > begin) (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

void populate_pages(const void* data, std::size_t bytes, bool write) {
#ifdef MADV_POPULATE_WRITE
  const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<std::uintptr_t>(data) & ~(page - 1);
  const auto end = reinterpret_cast<std::uintptr_t>(data) + bytes;
  const int advice = write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ;
  if (end > begin) (void)madvise(reinterpret_cast<void*>(begin), end - begin, advice);
#else
  (void)data, (void)bytes, (void)write;
#endif
}

}  // namespace bitrun
