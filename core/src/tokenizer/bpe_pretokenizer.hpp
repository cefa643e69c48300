// Pre-tokenizers of byte-level BPE vocabularies: split text into the words BPE merges within. Each regex of the
// original tokenizers is implemented by hand over Unicode code points (no regex engine, no ICU), with the same
// leftmost-alternative, greedy-with-backtracking semantics.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace bitrun::detail {

enum class BpePreTokenizer {
  // Llama-3 ("llama-bpe"):
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  Llama3,
  // GPT-2 ("default", "gpt-2"): 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  Gpt2,
};

// tokenizer.ggml.pre -> pre-tokenizer; nullopt when unsupported. An absent key ("") means GPT-2's.
std::optional<BpePreTokenizer> bpe_pre_tokenizer_from_name(std::string_view pre);

// Byte spans [begin, end) of the words of `text`, in order, covering it exactly.
std::vector<std::pair<std::size_t, std::size_t>> pre_tokenize(BpePreTokenizer kind, std::string_view text);

}  // namespace bitrun::detail
