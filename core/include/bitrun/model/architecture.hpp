// The model registry: what each supported GGUF architecture means for the graph. Adding an architecture is one
// entry in architectures.cpp; the transformer graph reads only these flags.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace bitrun {

enum class FfnActivation { Silu, ReluSquared };

struct ArchitectureSpec {
  std::string name;              // general.architecture value
  FfnActivation activation;
  bool neox_rope;                // NEOX pairs (i, i+d/2) instead of adjacent pairs (2i, 2i+1)
  bool sub_norms;                // SubLN: attn_sub_norm before attn_output, ffn_sub_norm before ffn_down
  bool ternary_projections;      // BitNet b1.58: projections are ternary with int8 per-token activations;
                                 // float projection weights are ternarized at load (per-tensor absmean)
};

// nullptr when the architecture is not supported.
const ArchitectureSpec* find_architecture(std::string_view name);
std::vector<std::string> supported_architectures();

// The per-layer projections ("attn_q", ..., "ffn_down"): the matrices that are ternary in BitNet models.
const std::vector<std::string>& projection_names();
// True for "blk.<N>.<projection>.weight".
bool is_projection_weight(std::string_view tensor_name);

}  // namespace bitrun
