// Cache-line aligned storage for kernel inputs and outputs (SIMD loads are fastest on 64-byte boundaries).
#pragma once

#include <cstddef>
#include <new>
#include <utility>
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

  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{Alignment}));
  }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t{Alignment}); }

  template <typename U>
  bool operator==(const AlignedAllocator<U, Alignment>&) const noexcept { return true; }
};

template <typename T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

// Alignment of a buffer of kHugePageBytes or more in UninitializedAlignedVector: a whole number of transparent huge
// pages fits in it (64-byte aligned, a 1.6 MB packed matrix never contains a whole 2 MB page).
constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;

// The same storage, whose resize() leaves new elements default-initialized (for bytes: unwritten). For buffers that
// are filled right after, such as a packed matrix: zero-filling a 2B model's weights first cost a second of load
// on one thread, and its page faults then all land on that thread instead of the threads that fill it. Buffers of
// 2 MB or more start on a 2 MB boundary (see advise_huge_pages).
template <typename T>
struct UninitializedAlignedAllocator : AlignedAllocator<T> {
  template <typename U>
  struct rebind { using other = UninitializedAlignedAllocator<U>; };
  UninitializedAlignedAllocator() = default;
  template <typename U>
  UninitializedAlignedAllocator(const UninitializedAlignedAllocator<U>&) noexcept {}
  static std::align_val_t alignment(std::size_t n) {
    return std::align_val_t{n * sizeof(T) >= kHugePageBytes ? kHugePageBytes : 64};
  }
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), alignment(n))); }
  void deallocate(T* p, std::size_t n) noexcept { ::operator delete(p, alignment(n)); }
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

template <typename T>
using UninitializedAlignedVector = std::vector<T, UninitializedAlignedAllocator<T>>;

// Asks the kernel to back the 2 MB-aligned part of [data, data + bytes) with transparent huge pages before it is first
// written: a 2B model's packed weights are ~200,000 page faults in 4 KB pages (a third of its load on this VM's
// hypervisor) and ~400 in 2 MB ones. Advice only; without transparent huge pages nothing changes.
void advise_huge_pages(void* data, std::size_t bytes);

// Commits the pages of [data, data + bytes) now, in one call (MADV_POPULATE_WRITE, or _READ for a read-only file
// mapping; Linux 5.14+), instead of one fault per page on first access; the contents are unchanged. Advice only: an
// older kernel leaves the faults to the accesses. Loading calls it for slices of a tensor and of its packed buffer,
// each on the thread that then works on the slice.
void populate_pages(const void* data, std::size_t bytes, bool write = true);

}  // namespace bitrun
