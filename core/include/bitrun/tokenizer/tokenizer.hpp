// Tokenizers built from GGUF metadata: SentencePiece-style (`tokenizer.ggml.model = llama`: scores, byte
// fallback, dummy-prefix space) and byte-level BPE (`gpt2` with the `llama-bpe` pre-tokenizer: merges by rank).
// Both encode text to ids and decode ids back to the exact bytes; StreamingDecoder turns a stream of ids into
// text that never ends in half a UTF-8 character.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace bitrun {

class GgufFile;

// tokenizer.ggml.token_type values.
enum class TokenType : std::int32_t { Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4,
                                      Unused = 5, Byte = 6 };

// Everything a tokenizer needs, as read from a GGUF file (or built by a test or the model trainer).
struct Vocab {
  enum class Model { Spm, Bpe };
  Model model = Model::Spm;
  std::string pre;                     // tokenizer.ggml.pre (BPE pre-tokenizer), e.g. "llama-bpe"
  std::vector<std::string> tokens;     // token text as stored (SPM: U+2581 for space; BPE: GPT-2 byte alphabet)
  std::vector<float> scores;           // SPM merge priorities; empty = all zero
  std::vector<TokenType> types;        // empty = all Normal
  std::vector<std::string> merges;     // BPE merges "left right", best (lowest rank) first
  std::int32_t bos = -1, eos = -1, unk = -1, pad = -1;
  std::int32_t eot = -1;               // end of turn (e.g. <|eot_id|>, <|im_end|>), -1 when the vocab has none
  bool add_bos = true;
  bool add_space_prefix = true;        // SPM dummy prefix
  std::string chat_template;           // tokenizer.chat_template (Jinja source), may be empty
};

// Reads tokenizer.ggml.* from the file. FormatError naming the key when one is missing, of the wrong type, has the
// wrong length, or names an unsupported tokenizer model or pre-tokenizer.
Vocab vocab_from_gguf(const GgufFile& file);

class Tokenizer {
 public:
  // FormatError when the vocab is inconsistent (special ids out of range, scores/types of the wrong length, SPM
  // with neither byte tokens for byte fallback nor an unknown token, merges naming unknown tokens, unsupported
  // pre-tokenizer).
  static std::unique_ptr<Tokenizer> create(Vocab vocab);
  virtual ~Tokenizer() = default;

  const Vocab& vocab() const { return vocab_; }
  std::int32_t vocab_size() const { return static_cast<std::int32_t>(vocab_.tokens.size()); }
  // The longest token text in the vocabulary, in bytes (at least 1): no token covers more bytes of input than this,
  // so a text of n bytes encodes to at least n / max_token_text_bytes() tokens (a cheap early length check).
  std::size_t max_token_text_bytes() const { return max_token_text_bytes_; }

  // add_bos: prepend BOS when the vocab has one and asks for it (tokenizer.ggml.add_bos_token). parse_special:
  // text spelling a control or user-defined token (e.g. "<|eot_id|>"; leftmost, then longest) becomes that token
  // instead of being tokenized as plain text.
  virtual std::vector<std::int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const = 0;

  // The bytes token `id` stands for. Control tokens give "" unless render_special. Throws Error for an id outside
  // the vocabulary. For SPM, a token's leading space is kept: decode() drops the dummy prefix of the first token.
  std::string token_bytes(std::int32_t id, bool render_special = false) const;

  // The text of a sequence of ids (the inverse of encode for text without special tokens): token bytes
  // concatenated, minus the SPM dummy-prefix space at the start, skipping BOS.
  std::string decode(std::span<const std::int32_t> ids, bool render_special = false) const;

  // EOS, EOT and other end-of-generation controls the vocab defines (<|eot_id|>, <|eom_id|>, <|im_end|>, </s>).
  bool is_end_of_generation(std::int32_t id) const;
  const std::vector<std::int32_t>& end_of_generation_tokens() const { return end_of_generation_; }
  // The id of the token whose stored text is exactly `text` (first one if the vocab repeats a text).
  std::optional<std::int32_t> find_token(std::string_view text) const;

 protected:
  explicit Tokenizer(Vocab vocab);
  Vocab vocab_;
  std::vector<std::int32_t> end_of_generation_;
  std::size_t max_token_text_bytes_ = 1;
  std::vector<std::string> pieces_;   // the bytes each token decodes to, filled by the subclass
                                      // ("" for control and unused tokens, U+FFFD for unrepresentable text)
  // Stored token text -> id, shared by find_token and the encoders (heterogeneous lookup by string_view).
  struct TextHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::int32_t, TextHash, std::equal_to<>> token_ids_;
};

// Incremental detokenization for streaming: push() returns the text that became complete (whole UTF-8
// characters only; ill-formed bytes as U+FFFD, so the stream is always valid UTF-8); flush() returns what is left
// at the end (an incomplete tail as U+FFFD). Like decode(), a leading BOS is skipped and the SPM dummy-prefix
// space of the first token is dropped.
class StreamingDecoder {
 public:
  // continuation: the tokens continue text already there (a completion after its prompt), so the first one keeps
  // its SentencePiece space; otherwise they start the text, and that space is dropped as decode() does.
  explicit StreamingDecoder(const Tokenizer& tokenizer, bool render_special = false, bool continuation = false);
  std::string push(std::int32_t id);
  std::string flush();

 private:
  const Tokenizer& tokenizer_;
  bool render_special_;
  bool first_ = true;
  std::string pending_;   // bytes of an incomplete UTF-8 character
};

}  // namespace bitrun
