// libFuzzer target: the GGUF reader on arbitrary bytes (scripts/fuzz.sh builds and runs it). A hostile file may
// only ever produce bitrun::Error (FormatError); a crash, hang or sanitizer report is a finding. Every tensor the
// reader accepts is then read whole, as the loader would.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "bitrun/base/error.hpp"
#include "bitrun/gguf/ggml_types.hpp"
#include "bitrun/gguf/gguf.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The reader maps a path: an in-memory file keeps this off the disk.
  static const int fd = memfd_create("fuzz.gguf", 0);
  if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) return 0;
  try {
    const bitrun::GgufFile f = bitrun::GgufFile::open("/proc/self/fd/" + std::to_string(fd));
    for (const auto& t : f.tensors()) {
      // Decode (a few rows of) every float tensor and read every byte of the others.
      if (bitrun::type_traits(t.type).ternary) {
        std::vector<std::uint8_t> bytes(t.bytes);
        f.copy_tensor_bytes(t, 0, t.bytes, bytes.data());
      } else if (t.row_len() > 0 && t.row_len() <= (1 << 16)) {
        const std::int64_t rows = std::min<std::int64_t>(t.n_rows(), 4);
        std::vector<float> out(static_cast<std::size_t>(t.row_len() * rows));
        bitrun::dequantize(t.type, f.tensor_data(t), bitrun::tensor_bytes(t.type, t.row_len(), rows), t.row_len(),
                           rows, out.data());
      }
    }
    for (const auto& [key, value] : f.metadata()) (void)f.find(key);
  } catch (const bitrun::Error&) {
  }
  return 0;
}
