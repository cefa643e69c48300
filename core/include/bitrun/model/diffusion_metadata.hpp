// What a block-diffusion checkpoint states about how it must be decoded (GGUF keys diffusion.block_size,
// diffusion.attention, diffusion.shift_logits; the mask token is tokenizer.ggml.mask_token_id). Shared by the
// model loader, which reads and validates it, and the decoders, which receive it with each request.
#pragma once

#include <cstdint>

namespace bitrun {

// The attention contract a diffusion model was trained under (docs/models.md, "Diffusion metadata").
enum class DiffusionAttention : std::int32_t {
  Unspecified,   // the file does not say
  BlockCausal,   // Fast-dLLM v2: bidirectional inside a block, causal across blocks, commit pass per block
  Causal,        // WrinkleFree DLM: causal attention everywhere
};

struct DiffusionMetadata {
  std::int32_t block_size = 0;                                   // 0 = not stated
  DiffusionAttention attention = DiffusionAttention::Unspecified;
  bool shift_logits = true;                                      // output row j-1 predicts token j
};

}  // namespace bitrun
