#include "bitrun/model/convert.hpp"

#include "bitrun/model/architecture.hpp"
#include "bitrun/base/error.hpp"
#include "bitrun/gguf/gguf.hpp"

namespace bitrun {
namespace {

bool is_embedding(const std::string& name) { return name == "token_embd.weight" || name == "output.weight"; }

// The bytes of tensor `t` re-encoded as `target`. Ternary targets take ternary sources' codes and scales as
// they are, and ternarize float sources the way the loader does (exact ternary values kept, else absmean).
std::vector<std::uint8_t> reencode(const GgufFile& in, const GgufTensorInfo& t, GgmlType target) {
  const std::uint8_t* data = in.tensor_data(t);
  if (t.type == target) return {data, data + t.bytes};
  const bool ternary_source = type_traits(t.type).ternary;
  if (type_traits(target).ternary) {
    if (ternary_source) return encode_ternary(target, decode_ternary(t.type, data, t.bytes, t.row_len(), t.n_rows()));
    std::vector<float> values(static_cast<std::size_t>(t.n_elements()));
    dequantize(t.type, data, t.bytes, t.row_len(), t.n_rows(), values.data());
    return encode_ternary(target, ternarize(values.data(), t.row_len(), t.n_rows()));
  }
  std::vector<float> values(static_cast<std::size_t>(t.n_elements()));
  dequantize(t.type, data, t.bytes, t.row_len(), t.n_rows(), values.data());
  return encode(target, values.data(), t.row_len(), t.n_rows());
}

}  // namespace

void convert_model(const GgufFile& input, const std::filesystem::path& output, const ConvertOptions& options) {
  const std::string arch_name = input.opt_string("general.architecture").value_or("");
  const ArchitectureSpec* arch = find_architecture(arch_name);
  if (!arch) throw Error(input.path().string() + ": unsupported architecture '" + arch_name + "'");
  if (type_traits(options.weight_type).ternary && !arch->ternary_projections)
    throw Error(input.path().string() + ": architecture '" + arch_name + "' has float projection weights; " +
                type_traits(options.weight_type).name +
                " is only for the ternary architectures (bitnet, bitnet-b1.58, bitnet-25)");
  if (options.embedding_type && type_traits(*options.embedding_type).ternary)
    throw Error("the embedding cannot be ternary (choose f32, f16, bf16, q8_0 or q6_k)");

  GgufWriter writer(input.alignment());
  for (const auto& [key, value] : input.metadata())
    if (key != "general.file_type" && key != "general.alignment") writer.set(key, value);   // file_type would lie
  const auto& tensors = input.tensors();
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const GgufTensorInfo& t = tensors[i];
    GgmlType target = t.type;
    if (is_projection_weight(t.name)) target = options.weight_type;
    else if (is_embedding(t.name) && options.embedding_type) target = *options.embedding_type;
    if (options.progress) options.progress(i, tensors.size(), t.name, t.type, target);
    try {
      writer.add_tensor(t.name, t.ne, target, reencode(input, t, target));
    } catch (const FormatError& e) {
      throw Error("tensor '" + t.name + "' (" + type_traits(t.type).name + " -> " + type_traits(target).name +
                  "): " + e.what());
    }
  }
  writer.write(output);
}

}  // namespace bitrun
