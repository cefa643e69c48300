// libFuzzer target: the safetensors reader (what `bitrun import` maps from a checkpoint folder) on arbitrary
// bytes. A hostile file may only ever produce bitrun::Error (FormatError); a crash, hang or sanitizer report is a
// finding. Every tensor the reader accepts is read whole, and float ones converted as the importer does.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "bitrun/base/error.hpp"
#include "bitrun/import/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const int fd = memfd_create("fuzz.safetensors", 0);
  if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) return 0;
  try {
    const auto f = bitrun::SafetensorsFile::open("/proc/self/fd/" + std::to_string(fd));
    std::uint64_t sum = 0;
    for (const auto& t : f->tensors()) {
      for (std::uint64_t i = 0; i < t.bytes; ++i) sum += t.data[i];
      if (t.elements() <= (1 << 16)) {
        try {
          (void)t.to_floats();
        } catch (const bitrun::FormatError&) {   // an integer dtype: refused by name
        }
      }
    }
    (void)sum;
  } catch (const bitrun::Error&) {
  }
  return 0;
}
