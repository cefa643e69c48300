// The GGUF reader and writer: round trips, and hand-made corrupt files (truncation at every byte, huge counts,
// bad types, overlapping or misplaced tensors) that must all give a FormatError naming the problem. CMake also
// builds this suite with AddressSanitizer (test_gguf_asan) so an out-of-bounds read fails the test run.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "bitrun/base/error.hpp"
#include "bitrun/gguf/gguf.hpp"
#include "test_support.hpp"

namespace bitrun {
namespace {

namespace fs = std::filesystem;

fs::path temp_path(const std::string& name) {
  return fs::temp_directory_path() / ("bitrun-test-gguf-" + std::to_string(::getpid()) + "-" + name);
}

std::vector<std::uint8_t> read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& p, const std::vector<std::uint8_t>& b) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// Little-endian byte builder for hand-made files.
struct Bytes {
  std::vector<std::uint8_t> b;
  template <typename T>
  Bytes& put(T v) {
    std::uint8_t tmp[sizeof(T)];
    std::memcpy(tmp, &v, sizeof v);
    b.insert(b.end(), tmp, tmp + sizeof(T));
    return *this;
  }
  Bytes& str(const std::string& s) {
    put<std::uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& header(std::uint64_t n_tensors, std::uint64_t n_kv, std::uint32_t version = 3) {
    b.insert(b.end(), {'G', 'G', 'U', 'F'});
    return put(version).put(n_tensors).put(n_kv);
  }
  Bytes& kv_string(const std::string& k, const std::string& v) { return str(k).put<std::uint32_t>(8).str(v); }
  Bytes& tensor(const std::string& name, std::vector<std::uint64_t> ne, std::uint32_t type, std::uint64_t offset) {
    str(name).put<std::uint32_t>(static_cast<std::uint32_t>(ne.size()));
    for (auto d : ne) put(d);
    return put(type).put(offset);
  }
  Bytes& pad(std::size_t alignment = 32) {
    while (b.size() % alignment) b.push_back(0);
    return *this;
  }
  Bytes& zeros(std::size_t n) {
    b.insert(b.end(), n, 0);
    return *this;
  }
};

// The error message of opening these bytes as a GGUF file, or "(no error)".
std::string open_error(const std::vector<std::uint8_t>& bytes) {
  const fs::path p = temp_path("case.gguf");
  write_bytes(p, bytes);
  std::string msg = test::error_message<FormatError>([&] { GgufFile::open(p); });
  fs::remove(p);
  return msg;
}

// A valid small model-like file written by GgufWriter: every metadata kind and tensors of several types.
fs::path write_sample(const std::string& name) {
  GgufWriter w;
  w.set("general.architecture", GgufValue::string("bitnet-b1.58"));
  w.set("general.name", GgufValue::string("sample"));
  w.set("test.u32", GgufValue::u32(7));
  w.set("test.i32", GgufValue::i32(-5));
  w.set("test.u64", GgufValue::u64(std::uint64_t{1} << 60));
  w.set("test.f32", GgufValue::f32(0.25f));
  w.set("test.bool", GgufValue::boolean(true));
  w.set("test.strings", GgufValue::string_array({"a", "", "\xe2\x96\x81x"}));
  w.set("test.floats", GgufValue::f32_array({1.5f, -2.0f}));
  w.set("test.ints", GgufValue::i32_array({1, -1, 1 << 30}));
  std::vector<float> v(64 * 3);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) * 0.5f - 7.0f;
  w.add_f32_tensor("dense", {64, 3}, v);
  w.add_tensor("half", {64, 3}, GgmlType::F16, encode(GgmlType::F16, v.data(), 64, 3));
  std::vector<float> t(256 * 2);
  for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<float>(static_cast<int>(i % 3) - 1) * 0.5f;
  w.add_tensor("ternary", {256, 2}, GgmlType::I2_S, encode(GgmlType::I2_S, t.data(), 256, 2));
  const fs::path p = temp_path(name);
  w.write(p);
  return p;
}

TEST(Gguf, WriterRoundTripKeepsMetadataAndTensors) {
  const fs::path p = write_sample("roundtrip.gguf");
  GgufFile f = GgufFile::open(p);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.opt_string("general.architecture"), "bitnet-b1.58");
  EXPECT_EQ(f.opt_u64("test.u32"), 7u);
  EXPECT_EQ(f.opt_i64("test.i32"), -5);
  EXPECT_EQ(f.opt_u64("test.u64"), std::uint64_t{1} << 60);
  EXPECT_EQ(f.opt_f64("test.f32"), 0.25);
  EXPECT_EQ(f.opt_bool("test.bool"), true);
  ASSERT_NE(f.opt_string_array("test.strings"), nullptr);
  EXPECT_EQ(*f.opt_string_array("test.strings"), (std::vector<std::string>{"a", "", "\xe2\x96\x81x"}));
  EXPECT_EQ(*f.opt_number_array("test.floats"), (std::vector<double>{1.5, -2.0}));
  EXPECT_EQ(*f.opt_number_array("test.ints"), (std::vector<double>{1, -1, 1 << 30}));
  EXPECT_FALSE(f.opt_string("absent").has_value());
  EXPECT_EQ(f.metadata().front().first, "general.architecture");   // file order is kept

  ASSERT_EQ(f.tensors().size(), 3u);
  const GgufTensorInfo* dense = f.find_tensor("dense");
  ASSERT_NE(dense, nullptr);
  EXPECT_EQ(dense->ne, (std::vector<std::int64_t>{64, 3}));
  EXPECT_EQ(dense->n_rows(), 3);
  std::vector<float> back(192);
  dequantize(dense->type, f.tensor_data(*dense), dense->bytes, 64, 3, back.data());
  EXPECT_EQ(back[0], -7.0f);
  EXPECT_EQ(back[191], 191 * 0.5f - 7.0f);
  for (const auto& t : f.tensors()) EXPECT_EQ(t.offset % f.alignment(), 0u) << t.name;

  // Rewriting every key and tensor of the file gives the same bytes.
  GgufWriter again;
  for (const auto& [k, v] : f.metadata()) again.set(k, v);
  for (const auto& t : f.tensors())
    again.add_tensor(t.name, t.ne, t.type,
                     std::vector<std::uint8_t>(f.tensor_data(t), f.tensor_data(t) + t.bytes));
  const fs::path p2 = temp_path("rewrite.gguf");
  again.write(p2);
  EXPECT_EQ(read_bytes(p), read_bytes(p2));
  fs::remove(p);
  fs::remove(p2);
}

TEST(Gguf, WrongValueTypeNamesTheKey) {
  const fs::path p = write_sample("types.gguf");
  GgufFile f = GgufFile::open(p);
  EXPECT_NE(test::error_message<FormatError>([&] { f.opt_u64("general.name"); }).find("'general.name' is a string"),
            std::string::npos);
  EXPECT_NE(test::error_message<FormatError>([&] { f.opt_u64("test.i32"); }).find("negative"), std::string::npos);
  EXPECT_NE(test::error_message<FormatError>([&] { f.opt_string_array("test.floats"); }).find("array of strings"),
            std::string::npos);
  fs::remove(p);
}

TEST(Gguf, EveryTruncationIsAClearError) {
  const fs::path p = write_sample("full.gguf");
  const std::vector<std::uint8_t> full = read_bytes(p);
  fs::remove(p);
  for (std::size_t len = 0; len < full.size(); ++len) {
    const std::vector<std::uint8_t> cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(len));
    const std::string msg = open_error(cut);
    ASSERT_NE(msg, "(no error)") << "truncated to " << len << " bytes of " << full.size() << " was accepted";
    EXPECT_TRUE(msg.find("truncated") != std::string::npos || msg.find("too small") != std::string::npos ||
                msg.find("does not fit") != std::string::npos || msg.find("impossible") != std::string::npos ||
                msg.find("claims") != std::string::npos)
        << len << ": " << msg;
  }
}

TEST(Gguf, RandomCorruptionNeverCrashes) {
  const fs::path p = write_sample("fuzz.gguf");
  const std::vector<std::uint8_t> full = read_bytes(p);
  fs::remove(p);
  std::mt19937 rng(1234);
  // Header and metadata bytes: the part a reader interprets. Each mutated file must open or fail cleanly.
  const std::size_t interpreted = std::min<std::size_t>(full.size(), 600);
  int opened = 0, refused = 0;
  for (int iter = 0; iter < 1500; ++iter) {
    std::vector<std::uint8_t> b = full;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < flips; ++i) b[rng() % interpreted] = static_cast<std::uint8_t>(rng());
    const fs::path q = temp_path("mut.gguf");
    write_bytes(q, b);
    try {
      GgufFile f = GgufFile::open(q);
      for (const auto& t : f.tensors()) {   // whatever validated must be readable in full
        std::vector<float> out(static_cast<std::size_t>(t.n_elements()));
        try {
          dequantize(t.type, f.tensor_data(t), t.bytes, t.row_len(), t.n_rows(), out.data());
        } catch (const FormatError&) {   // e.g. an invalid ternary code: reported, not read out of bounds
        }
      }
      ++opened;
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(q.string()), std::string::npos) << "a refusal names the file: " << e.what();
      ++refused;
    }
    fs::remove(q);
  }
  // Both outcomes occur (flips in values and padding leave a valid file), and nothing else escaped: any other
  // exception or a crash would have ended the test.
  EXPECT_GT(opened, 0);
  EXPECT_GT(refused, 0);
}

TEST(Gguf, BadHeaders) {
  EXPECT_NE(open_error({}).find("too small"), std::string::npos);
  Bytes magic;
  magic.b = {'G', 'G', 'M', 'L'};
  magic.put<std::uint32_t>(3).put<std::uint64_t>(0).put<std::uint64_t>(0);
  EXPECT_NE(open_error(magic.b).find("not a GGUF file"), std::string::npos);
  EXPECT_NE(open_error(Bytes().header(0, 0, 1).b).find("version 1"), std::string::npos);
  EXPECT_NE(open_error(Bytes().header(0, 0, 4).b).find("unsupported GGUF version 4"), std::string::npos);
  EXPECT_EQ(open_error(Bytes().header(0, 0, 2).b), "(no error)");   // v2: same layout as v3
  EXPECT_NE(open_error(Bytes().header(0, std::uint64_t{1} << 60).b).find("metadata count"), std::string::npos);
  EXPECT_NE(open_error(Bytes().header(std::uint64_t{1} << 60, 0).b).find("tensor count"), std::string::npos);
}

TEST(Gguf, BadMetadata) {
  // A string length far beyond the file.
  Bytes huge_string;
  huge_string.header(0, 1).str("k").put<std::uint32_t>(8).put<std::uint64_t>(std::uint64_t{1} << 40);
  EXPECT_NE(open_error(huge_string.b).find("claims"), std::string::npos);
  // An array count that cannot fit.
  Bytes huge_array;
  huge_array.header(0, 1).str("k").put<std::uint32_t>(9).put<std::uint32_t>(4).put<std::uint64_t>(1u << 30);
  EXPECT_NE(open_error(huge_array.b).find("does not fit"), std::string::npos);
  // Unknown value type.
  Bytes bad_type;
  bad_type.header(0, 1).str("k").put<std::uint32_t>(13).put<std::uint32_t>(0);
  EXPECT_NE(open_error(bad_type.b).find("unknown value type 13"), std::string::npos);
  // Arrays nested 65 deep.
  Bytes deep;
  deep.header(0, 1).str("k").put<std::uint32_t>(9);
  for (int i = 0; i < 65; ++i) deep.put<std::uint32_t>(9).put<std::uint64_t>(1);
  deep.zeros(64);
  EXPECT_NE(open_error(deep.b).find("nested deeper"), std::string::npos);
  // Duplicate key, empty key, bool that is not 0/1.
  EXPECT_NE(open_error(Bytes().header(0, 2).kv_string("a", "x").kv_string("a", "y").b).find("appears twice"),
            std::string::npos);
  EXPECT_NE(open_error(Bytes().header(0, 1).kv_string("", "x").b).find("empty"), std::string::npos);
  Bytes bad_bool;
  bad_bool.header(0, 1).str("b").put<std::uint32_t>(7).put<std::uint8_t>(2);
  EXPECT_NE(open_error(bad_bool.b).find("neither 0 nor 1"), std::string::npos);
  // Alignment that is not a power of two.
  Bytes align;
  align.header(0, 1).str("general.alignment").put<std::uint32_t>(4).put<std::uint32_t>(48);
  EXPECT_NE(open_error(align.b).find("power of two"), std::string::npos);
}

// One F32 tensor of 8 floats described by `describe`, followed by a 64-byte data section.
std::vector<std::uint8_t> one_tensor(std::vector<std::uint64_t> ne, std::uint32_t type, std::uint64_t offset,
                                     const std::string& arch = "llama") {
  Bytes b;
  b.header(1, 1).kv_string("general.architecture", arch).tensor("w", std::move(ne), type, offset).pad().zeros(64);
  return b.b;
}

TEST(Gguf, BadTensorDescriptions) {
  EXPECT_EQ(open_error(one_tensor({8}, 0, 0)), "(no error)");
  EXPECT_NE(open_error(one_tensor({8}, 2, 0)).find("q4_0"), std::string::npos);
  EXPECT_NE(open_error(one_tensor({8}, 77, 0)).find("id 77"), std::string::npos);
  EXPECT_NE(open_error(one_tensor({128}, 36, 0)).find("ambiguous"), std::string::npos);     // I2_S id in a llama file
  EXPECT_EQ(open_error(one_tensor({128}, 36, 0, "bitnet-b1.58")), "(no error)");            // 32 + 32 bytes: fits
  EXPECT_NE(open_error(one_tensor({8, 0}, 0, 0)).find("empty tensors"), std::string::npos);
  EXPECT_NE(open_error(one_tensor({1, 1, 1, 1, 1}, 0, 0)).find("5 dimensions"), std::string::npos);
  EXPECT_NE(open_error(one_tensor({std::uint64_t{1} << 40, std::uint64_t{1} << 40}, 0, 0)).find("overflows"),
            std::string::npos);
  EXPECT_NE(open_error(one_tensor({8}, 0, 4)).find("not a multiple of the alignment"), std::string::npos);
  EXPECT_NE(open_error(one_tensor({8}, 0, 64)).find("extends past the end"), std::string::npos);
  EXPECT_NE(open_error(one_tensor({100}, 8, 0)).find("not a multiple of the q8_0 block"), std::string::npos);
  EXPECT_NE(open_error(one_tensor({32}, 0, 0)).find("extends past the end"), std::string::npos);   // 128 > 64 bytes

  Bytes overlap;
  overlap.header(2, 0).tensor("a", {8}, 0, 0).tensor("b", {8}, 0, 0).pad().zeros(64);
  EXPECT_NE(open_error(overlap.b).find("overlap"), std::string::npos);
  Bytes dup;
  dup.header(2, 0).tensor("a", {8}, 0, 0).tensor("a", {8}, 0, 32).pad().zeros(64);
  EXPECT_NE(open_error(dup.b).find("appears twice"), std::string::npos);
}

TEST(Gguf, MissingFileIsAnError) {
  EXPECT_NE(test::error_message<Error>([] { GgufFile::open("/nonexistent/model.gguf"); }).find("cannot open"),
            std::string::npos);
}

TEST(Gguf, WriterRejectsWrongSizes) {
  GgufWriter w;
  EXPECT_THROW(w.add_tensor("x", {64}, GgmlType::F32, std::vector<std::uint8_t>(10)), FormatError);
  EXPECT_THROW(w.add_tensor("y", {100}, GgmlType::TQ2_0, std::vector<std::uint8_t>(66)), FormatError);
  w.add_f32_tensor("z", {2}, {1.0f, 2.0f});
  EXPECT_THROW(w.add_f32_tensor("z", {2}, {1.0f, 2.0f}), FormatError);
}

}  // namespace
}  // namespace bitrun

namespace bitrun {
namespace {

TEST(Gguf, DecodedMetadataIsBounded) {
  // 5M empty nested arrays: 60 MB on disk, but each would decode to a GgufValue (over 512 MiB in all).
  Bytes b;
  const std::uint64_t count = std::uint64_t{5} << 20;
  b.header(0, 1).str("k").put<std::uint32_t>(9).put<std::uint32_t>(9).put<std::uint64_t>(count);
  const std::size_t start = b.b.size();
  b.b.resize(start + count * 12);
  for (std::uint64_t i = 0; i < count; ++i) b.b[start + i * 12] = 0;   // element type U8, count 0 (zero bytes)
  EXPECT_NE(open_error(b.b).find("MiB decoded"), std::string::npos);
}

}  // namespace
}  // namespace bitrun
