// Pieces shared by the SPM and BPE tokenizers (internal to the core).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bitrun/tokenizer/tokenizer.hpp"

namespace bitrun::detail {

inline TokenType token_type(const Vocab& v, std::int32_t id) {
  return v.types.empty() ? TokenType::Normal : v.types[static_cast<std::size_t>(id)];
}

// Tokens plain text may be tokenized into. Control, byte, unknown and unused tokens are only ever produced on
// purpose (BOS, byte fallback, parse_special), never by merging text that happens to spell them ("<s>").
inline bool is_text_token(TokenType t) {
  return t == TokenType::Normal || t == TokenType::UserDefined || t == TokenType::Undefined;
}

// "<0x41>" -> 0x41 (the SentencePiece byte-fallback spelling).
std::optional<unsigned char> parse_byte_token(std::string_view text);
std::string byte_token_text(unsigned char byte);

// Splits text at control and user-defined token spellings (parse_special). Leftmost match wins; among tokens
// matching at the same position the longest wins (so "<|eot_id|>" beats a hypothetical "<|eot").
class SpecialTokenSplitter {
 public:
  explicit SpecialTokenSplitter(const Vocab& vocab);
  struct Fragment {
    std::string_view text;   // plain text when id < 0 (never empty)
    std::int32_t id = -1;    // the special token otherwise
  };
  std::vector<Fragment> split(std::string_view text) const;

 private:
  // Candidates bucketed by first byte, longest first.
  std::array<std::vector<std::pair<std::string, std::int32_t>>, 256> by_first_byte_;
};

std::unique_ptr<Tokenizer> make_spm_tokenizer(Vocab vocab);
std::unique_ptr<Tokenizer> make_bpe_tokenizer(Vocab vocab);

}  // namespace bitrun::detail
