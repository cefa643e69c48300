// Building a DecodeRequest from the loaded model and the configuration: the one place that tells decoders what
// they need to know about the model (vocabulary size, mask token, diffusion metadata), used by the CLI and the
// server alike.
#pragma once

#include <cstdint>
#include <vector>

#include "bitrun/plugin/decoder.hpp"

namespace bitrun {

class Config;
class Model;

// The model's vocabulary size and diffusion metadata, and its mask token: tokenizer.ggml.mask_token_id, else the
// text `|<MASK>|` if it encodes to a single token, else -1 (a diffusion decoder then refuses the request).
ModelFacts model_facts(const Model& model);

// Positions a request's sequence gets: the config's context_size, else the model's training context.
std::int32_t request_context_size(const Config& config, const Model& model);

// A request for `prompt` with the config's context size (context_size, else the model's), sampling.*, the model's
// end-of-generation tokens and model_facts(model).
DecodeRequest make_decode_request(const Config& config, const Model& model, std::vector<std::int32_t> prompt,
                                  std::int64_t max_tokens);

}  // namespace bitrun
