// `bitrun convert`: re-encode a GGUF model's weights to another type (e.g. F16/F32 -> I2_S or TQ2_0, TQ2_0 ->
// I2_S, ternary -> F16). Projection weights take `weight_type`; the token embedding and output take
// `embedding_type` when set; every other tensor and all metadata are copied unchanged.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "bitrun/gguf/ggml_types.hpp"

namespace bitrun {

class GgufFile;

struct ConvertOptions {
  GgmlType weight_type = GgmlType::I2_S;
  std::optional<GgmlType> embedding_type;
  // Called before each tensor: index (0-based), tensor count, tensor name, source and target type.
  std::function<void(std::size_t, std::size_t, const std::string&, GgmlType, GgmlType)> progress;
};

// Throws Error when the model's architecture is unknown, a ternary type is asked for an architecture with float
// projections, or a tensor cannot be represented in the target type (e.g. TQ block scales that differ inside a
// row, for I2_S's single scale).
void convert_model(const GgufFile& input, const std::filesystem::path& output, const ConvertOptions& options);

}  // namespace bitrun
