// The DecodeRequest every front end starts from: the config's context size (else the model's), sampling.* and
// the model's end-of-generation tokens. The CLI commands and the HTTP server build requests with this one
// function, then apply their own overrides.
#pragma once

#include <cstdint>
#include <vector>

#include "bitrun/decoder.hpp"

namespace bitrun {

class Config;
class Model;

// context_size from config, 0 meaning the model's training context.
std::int32_t context_size(const Config& config, const Model& model);

DecodeRequest decode_request(const Config& config, const Model& model, std::vector<std::int32_t> prompt,
                             std::int64_t max_tokens);

}  // namespace bitrun
