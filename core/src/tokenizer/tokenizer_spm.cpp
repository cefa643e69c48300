// SentencePiece-style tokenizer (tokenizer.ggml.model = "llama"): spaces become U+2581, a dummy-prefix space goes
// in front of each run of plain text, adjacent pieces are merged best-score-first while the merged text is a
// token, and characters no token covers fall back to <0xXX> byte tokens. Same algorithm as llama.cpp's
// llm_tokenizer_spm, so ids match it (and SentencePiece) exactly.
#include <queue>

#include "bitrun/base/error.hpp"
#include "tokenizer/tokenizer_internal.hpp"
#include "tokenizer/unicode.hpp"

namespace bitrun::detail {
namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

class SpmTokenizer final : public Tokenizer {
 public:
  explicit SpmTokenizer(Vocab vocab) : Tokenizer(std::move(vocab)), specials_(vocab_) {
    const std::size_t n = vocab_.tokens.size();
    // Byte fallback needs all 256 <0xXX> tokens; a vocab without them maps an uncovered character to <unk>.
    byte_fallback_ = true;
    for (int b = 0; b < 256; ++b) {
      auto id = find_token(byte_token_text(static_cast<unsigned char>(b)));
      byte_tokens_[b] = id ? *id : -1;
      if (!id) {
        if (vocab_.unk < 0)
          throw FormatError("tokenizer: SentencePiece vocab has no byte token " +
                            byte_token_text(static_cast<unsigned char>(b)) + " for byte fallback and no unknown token");
        byte_fallback_ = false;
      }
    }
    pieces_.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      const std::string& text = vocab_.tokens[i];
      switch (token_type(vocab_, static_cast<std::int32_t>(i))) {
        case TokenType::Byte:
          if (auto b = parse_byte_token(text)) pieces_[i] = std::string(1, static_cast<char>(*b));
          else pieces_[i] = unescape(text);
          break;
        case TokenType::Normal:
        case TokenType::UserDefined:
        case TokenType::Undefined:
          pieces_[i] = unescape(text);
          break;
        case TokenType::Unknown:
          pieces_[i] = "\xEF\xBF\xBD";  // U+FFFD: text the vocabulary could not represent
          break;
        case TokenType::Control:
        case TokenType::Unused:
          break;
      }
    }
  }

  std::vector<std::int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const override {
    std::vector<std::int32_t> out;
    if (add_bos && vocab_.add_bos && vocab_.bos >= 0) out.push_back(vocab_.bos);
    // Like SentencePiece on text with special tokens spliced in: each run of plain text is encoded on its own
    // and gets its own dummy prefix, both at the start and after a special token.
    bool after_special = true;
    auto encode_plain = [&](std::string_view plain) {
      std::string escaped;
      escaped.reserve(plain.size() + 8);
      if (vocab_.add_space_prefix && after_special) escaped += kSpace;
      for (char c : plain) {
        if (c == ' ') escaped += kSpace;
        else escaped += c;
      }
      encode_escaped(escaped, out);
      after_special = false;
    };
    if (!parse_special) {
      if (!text.empty()) encode_plain(text);
      return out;
    }
    for (const auto& f : specials_.split(text)) {
      if (f.id >= 0) {
        out.push_back(f.id);
        after_special = true;
      } else {
        encode_plain(f.text);
      }
    }
    return out;
  }

 private:
  static std::string unescape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
      if (text.compare(i, kSpace.size(), kSpace) == 0) {
        out += ' ';
        i += kSpace.size();
      } else {
        out += text[i++];
      }
    }
    return out;
  }

  // The id of a token that plain text may become, or -1.
  std::int32_t text_token(std::string_view text) const {
    auto it = token_ids_.find(text);
    if (it == token_ids_.end() || !is_text_token(token_type(vocab_, it->second))) return -1;
    return it->second;
  }

  struct Symbol {
    std::size_t offset, len;   // len 0 = merged into its left neighbour
    std::int64_t prev, next;   // -1 at the ends
  };
  struct Bigram {
    std::int64_t left, right;
    float score;
    std::size_t len;  // left.len + right.len when queued: a mismatch later means a side has changed
    // Priority: higher score first; among equal scores the leftmost pair (as SentencePiece does).
    bool operator<(const Bigram& o) const { return score < o.score || (score == o.score && left > o.left); }
  };

  void encode_escaped(const std::string& s, std::vector<std::int32_t>& out) const {
    std::vector<Symbol> syms;
    for (const auto& u : unicode::split_utf8(s)) {
      const auto idx = static_cast<std::int64_t>(syms.size());
      syms.push_back({u.offset, u.len, idx - 1, idx + 1});
    }
    if (syms.empty()) return;
    syms.back().next = -1;

    std::priority_queue<Bigram> queue;
    auto try_pair = [&](std::int64_t l, std::int64_t r) {
      if (l < 0 || r < 0) return;
      const std::size_t len = syms[l].len + syms[r].len;
      const std::int32_t id = text_token(std::string_view(s).substr(syms[l].offset, len));
      if (id < 0) return;
      queue.push({l, r, vocab_.scores.empty() ? 0.0f : vocab_.scores[id], len});
    };
    for (std::int64_t i = 1; i < static_cast<std::int64_t>(syms.size()); ++i) try_pair(i - 1, i);

    while (!queue.empty()) {
      const Bigram b = queue.top();
      queue.pop();
      Symbol& left = syms[b.left];
      Symbol& right = syms[b.right];
      // Symbols only grow, so an unchanged total length means neither side has merged since this was queued.
      if (left.len == 0 || right.len == 0 || left.len + right.len != b.len) continue;
      left.len += right.len;
      right.len = 0;
      left.next = right.next;
      if (right.next >= 0) syms[right.next].prev = b.left;
      try_pair(left.prev, b.left);
      try_pair(b.left, left.next);
    }

    // Every merged symbol is a token by construction; a single character may not be, and falls back to bytes.
    for (std::int64_t i = 0; i >= 0; i = syms[i].next) {
      const std::string_view piece = std::string_view(s).substr(syms[i].offset, syms[i].len);
      const std::int32_t id = text_token(piece);
      if (id >= 0) {
        out.push_back(id);
      } else if (byte_fallback_) {
        for (char c : piece) out.push_back(byte_tokens_[static_cast<unsigned char>(c)]);
      } else {
        out.push_back(vocab_.unk);
      }
    }
  }

  SpecialTokenSplitter specials_;
  bool byte_fallback_ = true;
  std::int32_t byte_tokens_[256];
};

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(Vocab vocab) { return std::make_unique<SpmTokenizer>(std::move(vocab)); }

}  // namespace bitrun::detail
