// The type table and the size-checking dispatchers; the layouts themselves live in ggml_float_codecs.cpp and
// ggml_ternary.cpp.
#include "bitrun/gguf/ggml_types.hpp"

#include <array>
#include <string>

#include "bitrun/base/error.hpp"
#include "gguf/ggml_codecs.hpp"

namespace bitrun {
namespace {

struct TypeEntry {
  GgmlType type;
  GgmlTypeTraits traits;
};

// The one table of supported types, shared by the codecs, the GGUF reader and the writer.
constexpr std::array<TypeEntry, 8> kTypes{{
    {GgmlType::F32, {"f32", 1, 4, false}},
    {GgmlType::F16, {"f16", 1, 2, false}},
    {GgmlType::Q8_0, {"q8_0", 32, 34, false}},     // fp16 d + 32 int8
    {GgmlType::Q6_K, {"q6_k", 256, 210, false}},   // ql[128] qh[64] int8 scales[16] fp16 d
    {GgmlType::BF16, {"bf16", 1, 2, false}},
    {GgmlType::TQ1_0, {"tq1_0", 256, 54, true}},   // qs[48] qh[4] fp16 d
    {GgmlType::TQ2_0, {"tq2_0", 256, 66, true}},   // qs[64] fp16 d
    {GgmlType::I2_S, {"i2_s", 128, 32, true}},     // + per-tensor 32-byte scale trailer
}};

constexpr std::uint64_t kI2sTrailerBytes = 32;

std::int64_t checked_elements(GgmlType type, std::int64_t row_len, std::int64_t n_rows) {
  std::int64_t n = 0;
  if (__builtin_mul_overflow(row_len, n_rows, &n))
    throw FormatError(std::string(type_traits(type).name) + " tensor of " + std::to_string(n_rows) + " rows of " +
                      std::to_string(row_len) + " elements: element count overflows");
  return n;
}

void check_data_size(GgmlType type, std::uint64_t data_bytes, std::int64_t row_len, std::int64_t n_rows) {
  const std::uint64_t need = tensor_bytes(type, row_len, n_rows);
  if (data_bytes < need)
    throw FormatError(std::string(type_traits(type).name) + " tensor of " + std::to_string(n_rows) + " x " +
                      std::to_string(row_len) + " needs " + std::to_string(need) + " bytes, got " +
                      std::to_string(data_bytes));
}

}  // namespace

const GgmlTypeTraits& type_traits(GgmlType type) {
  for (const TypeEntry& e : kTypes)
    if (e.type == type) return e.traits;
  throw FormatError("unsupported ggml type id " + std::to_string(static_cast<std::uint32_t>(type)));
}

std::optional<GgmlType> ggml_type_from_name(std::string_view name) {
  for (const TypeEntry& e : kTypes) {
    const std::string_view candidate = e.traits.name;
    if (candidate.size() != name.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < name.size() && same; ++i) {
      const char c = name[i] >= 'A' && name[i] <= 'Z' ? static_cast<char>(name[i] - 'A' + 'a') : name[i];
      same = c == candidate[i];
    }
    if (same) return e.type;
  }
  return std::nullopt;
}

std::optional<GgmlType> ggml_type_from_id(std::uint32_t id) {
  for (const TypeEntry& e : kTypes)
    if (static_cast<std::uint32_t>(e.type) == id) return e.type;
  return std::nullopt;
}

std::uint64_t tensor_bytes(GgmlType type, std::int64_t row_len, std::int64_t n_rows) {
  const GgmlTypeTraits& t = type_traits(type);
  if (row_len <= 0 || n_rows < 0)
    throw FormatError(std::string(t.name) + " tensor of " + std::to_string(n_rows) + " rows of " +
                      std::to_string(row_len) + " elements: invalid shape");
  if (row_len % t.block_elems != 0)
    throw FormatError("row length " + std::to_string(row_len) + " is not a multiple of the " + t.name +
                      " block size " + std::to_string(t.block_elems));
  const auto blocks = static_cast<std::uint64_t>(checked_elements(type, row_len, n_rows) / t.block_elems);
  std::uint64_t bytes = 0;
  if (__builtin_mul_overflow(blocks, static_cast<std::uint64_t>(t.block_bytes), &bytes) ||
      (type == GgmlType::I2_S && __builtin_add_overflow(bytes, kI2sTrailerBytes, &bytes)))
    throw FormatError(std::string(t.name) + " tensor of " + std::to_string(n_rows) + " rows of " +
                      std::to_string(row_len) + " elements: byte size overflows");
  return bytes;
}

void dequantize(GgmlType type, const std::uint8_t* data, std::uint64_t data_bytes, std::int64_t row_len,
                std::int64_t n_rows, float* out) {
  check_data_size(type, data_bytes, row_len, n_rows);
  const std::int64_t n = row_len * n_rows;   // cannot overflow: tensor_bytes checked it
  if (!type_traits(type).ternary) {
    detail::decode_float_type(type, data, n, out);
    return;
  }
  const TernaryTensor t = decode_ternary(type, data, data_bytes, row_len, n_rows);
  for (std::int64_t i = 0; i < n; ++i)
    out[i] = static_cast<float>(t.codes[static_cast<std::size_t>(i)]) *
             t.scales[static_cast<std::size_t>(i / t.scale_block)];
}

TernaryTensor ternarize(const float* values, std::int64_t row_len, std::int64_t n_rows) {
  try {
    return detail::ternary_from_exact(GgmlType::I2_S, values, row_len, n_rows);   // I2_S groups: per tensor
  } catch (const FormatError&) {
    return ternarize_absmean(values, row_len, n_rows);
  }
}

std::vector<std::uint8_t> encode(GgmlType type, const float* values, std::int64_t row_len, std::int64_t n_rows) {
  if (type_traits(type).ternary)
    return encode_ternary(type, detail::ternary_from_exact(type, values, row_len, n_rows));
  std::vector<std::uint8_t> out(static_cast<std::size_t>(tensor_bytes(type, row_len, n_rows)));
  detail::encode_float_type(type, values, row_len * n_rows, out.data());
  return out;
}

}  // namespace bitrun
