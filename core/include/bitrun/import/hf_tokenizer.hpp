// A Hugging Face tokenizer.json (+ tokenizer_config.json) as GGUF tokenizer metadata (tokenizer.ggml.*), the keys
// bitrun's own tokenizers and llama.cpp read:
// - byte-level BPE (GPT-2 / Llama 3: a ByteLevel pre-tokenizer or decoder) -> model "gpt2", tokens and merges as
//   written, the pre-tokenizer named from its split pattern (llama-bpe, or default for GPT-2's);
// - SentencePiece-style BPE (byte_fallback, "▁" for spaces) -> model "llama": merges become scores (the piece a
//   merge of rank r makes scores -r, so best-score-first merging merges in rank order, as the BPE would); a
//   SentencePiece Unigram vocabulary keeps its own scores.
// Token types: "<0xNN>" pieces are bytes, special added tokens control, other added tokens user-defined, the unk
// token unknown. Anything else (WordPiece, an unknown pre-tokenizer, a hole in the ids) is an error naming it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace bitrun {

class GgufWriter;
class Json;

struct HfTokenizerFacts {
  std::int64_t n_tokens = 0;   // after padding to at least min_tokens
  std::optional<std::int32_t> mask_token;   // "|<MASK>|" or "<|mask|>"-style added token, when one exists
};

// Adds the tokenizer.ggml.* keys (and tokenizer.chat_template) for `tokenizer` to `out`. `config` is
// tokenizer_config.json (or a null Json), `model_config` config.json (for bos/eos ids when the tokenizer config has
// none). The vocabulary is padded with unused "[PAD<id>]" tokens up to min_tokens (the embedding's rows).
// Throws FormatError naming the file and key at fault.
HfTokenizerFacts add_hf_tokenizer(GgufWriter& out, const Json& tokenizer, const Json& config, const Json& model_config,
                                  std::int64_t min_tokens, const std::string& source_name);

// Token id of `text` in tokenizer.json (vocabulary or added tokens); nullopt when absent.
std::optional<std::int32_t> hf_token_id(const Json& tokenizer, const std::string& text);

}  // namespace bitrun
