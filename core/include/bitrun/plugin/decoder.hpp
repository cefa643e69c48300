// Decoder: a step-wise decoding policy for one sequence. The engine owns the model, the KV cache and the batching;
// each iteration it asks every active session what to compute (next_step), runs one merged forward for all of
// them, and hands each session the logits rows it asked for (consume). A decoder never runs the model itself,
// which is what lets autoregressive and block-diffusion requests share the same forward passes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "bitrun/model/diffusion_metadata.hpp"

namespace bitrun {

class Config;

// How the rows fed in one step attend to each other (they always see the sequence's cached positions).
enum class StepAttention {
  Causal,         // row i sees rows 0..i of this step (prefill, autoregressive decoding)
  Bidirectional,  // every row sees every row of this step (and the cached positions up to cached_until)
  BlockCausal,    // rows see every row of their own block (aligned at absolute multiples of block_size) and the
                  // rows of earlier blocks: block-diffusion prefill, block decoding and commit passes
};

// What a session wants computed in the next forward.
struct StepRequest {
  std::vector<std::int32_t> tokens;          // fed at consecutive positions starting at `position`
  std::int32_t position = 0;                 // the cache is truncated to `position` entries before the step
  StepAttention attention = StepAttention::Causal;
  std::vector<std::int32_t> logit_rows;      // rows (indices into tokens) whose logits the session needs
  std::int32_t block_size = 0;               // BlockCausal: the block grid
  // Bidirectional only, 0 = off: the rows overwrite positions inside K/V the cache already holds up to here, and
  // attend to all of it; the cache is kept up to cached_until instead of truncated to `position` (the
  // block-diffusion sub-block cache, which reuses the rest of the block's slightly stale K/V).
  std::int32_t cached_until = 0;
};

// Logits of the rows a session asked for, in the order it asked.
struct StepLogits {
  std::int32_t vocab_size = 0;
  std::span<const float> data;               // logit_rows.size() * vocab_size
  std::span<const float> row(std::size_t i) const { return data.subspan(i * vocab_size, vocab_size); }
};

enum class FinishReason { None, Stop, Length, Cancelled, Error };

// Log-probability of an emitted token under the model (log-softmax of its raw logits: temperature 1, before
// penalties), with the most likely alternatives when asked for (OpenAI's logprobs / top_logprobs).
struct TokenLogprob {
  std::int32_t token = 0;
  float logprob = 0.0f;
  std::vector<std::pair<std::int32_t, float>> top;   // best first
};

class DecodeSession {
 public:
  virtual ~DecodeSession() = default;
  // Called only while !finished().
  virtual StepRequest next_step() = 0;
  // Returns the tokens that became final in this step (possibly none), in order.
  virtual std::vector<std::int32_t> consume(const StepLogits& logits) = 0;
  // When the request asked for logprobs: one entry per token the last consume() returned (then cleared).
  virtual std::vector<TokenLogprob> take_logprobs() { return {}; }
  virtual FinishReason finished() const = 0;
};

// Sampling controls shared by the decoders (autoregressive and the sampled diffusion variants).
struct SamplingParams {
  float temperature = 0.0f;       // 0 = greedy
  std::int32_t top_k = 0;         // 0 = off
  float top_p = 1.0f;             // 1 = off
  float min_p = 0.0f;             // 0 = off
  float repeat_penalty = 1.0f;    // 1 = off (multiplicative, llama.cpp style)
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  std::int32_t penalty_last_n = 64;
  std::uint64_t seed = 0;
};

// What decoders are told about the model (filled by the core: model_facts() in bitrun/decode_request.hpp).
struct ModelFacts {
  std::int32_t vocab_size = 0;               // 0 = not filled in
  std::int32_t mask_token = -1;              // tokenizer.ggml.mask_token_id, else `|<MASK>|` if one token; -1 = none
  DiffusionMetadata diffusion;
};

struct DecodeRequest {
  std::vector<std::int32_t> prompt;          // tokenized, BOS included if the model wants it
  std::int32_t max_tokens = 256;
  std::int32_t context_size = 0;             // positions available to this sequence
  SamplingParams sampling;
  std::vector<std::int32_t> end_tokens;      // EOS / end-of-turn ids: generation stops and they are not emitted
  std::int32_t logprobs = -1;                // -1: none; 0..20: each token's logprob and this many alternatives
  // Per-request overrides of the decoder's `decoder.*` settings, keyed without the prefix ("mode" -> "adaptive",
  // "threshold" -> "0.9"); what an HTTP request's `decoder` object carries. A decoder throws ConfigError naming
  // any key or value it does not accept.
  std::map<std::string, std::string> decoder_options;
  ModelFacts model;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual std::string name() const = 0;
  // The ways of decoding a request can choose with decoder_options {"mode": <name>}, in a sensible order for a
  // comparison (`bitrun bench` runs each); empty when the decoder has one way.
  virtual std::vector<std::string> modes() const { return {}; }
  virtual std::unique_ptr<DecodeSession> start(const DecodeRequest& request) = 0;
};

// Factory every decoder plugin exports as `bitrun_create_decoder`. Reads the settings its descriptor declares
// (plugin_abi.hpp) from config.
using CreateDecoderFn = std::unique_ptr<Decoder>(const Config&);

}  // namespace bitrun
