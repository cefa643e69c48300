// Cache-line aligned storage for kernel inputs and outputs (SIMD loads are fastest on 64-byte boundaries).
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <new>
#include <vector>

namespace bitrun {

template <typename T, std::size_t Alignment = 64>
struct AlignedAllocator {
  using value_type = T;
  template <typename U>
  struct rebind { using other = AlignedAllocator<U, Alignment>; };

  AlignedAllocator() = default;
  template <typename U>
  AlignedAllocator(const AlignedAllocator<U, Alignment>&) noexcept {}

  // Large buffers (packed weights) are 2 MiB aligned and asked to use transparent huge pages: loading a model
  // then takes a few hundred page faults instead of hundreds of thousands.
  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
    if (bytes < kHugeThreshold) return static_cast<T*>(::operator new(bytes, std::align_val_t{Alignment}));
    void* p = ::operator new(bytes, std::align_val_t{kHugePage});
    ::madvise(p, bytes / kHugePage * kHugePage, MADV_HUGEPAGE);
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) noexcept {
    ::operator delete(p, std::align_val_t{n * sizeof(T) < kHugeThreshold ? Alignment : kHugePage});
  }
  static constexpr std::size_t kHugePage = std::size_t{2} << 20, kHugeThreshold = std::size_t{4} << 20;

  template <typename U>
  bool operator==(const AlignedAllocator<U, Alignment>&) const noexcept { return true; }
};

template <typename T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

}  // namespace bitrun
