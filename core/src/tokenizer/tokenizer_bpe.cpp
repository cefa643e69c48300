// Byte-level BPE tokenizer (tokenizer.ggml.model = "gpt2"): the pre-tokenizer splits text into words, each byte
// of a word starts as the token of its GPT-2 alphabet character, and adjacent tokens are merged lowest merge rank
// first (leftmost among equals) until no listed merge applies. Same result as llama.cpp's llm_tokenizer_bpe and
// Hugging Face tokenizers.
#include <queue>
#include <unordered_map>

#include "bitrun/base/error.hpp"
#include "tokenizer/bpe_pretokenizer.hpp"
#include "tokenizer/tokenizer_internal.hpp"
#include "tokenizer/unicode.hpp"

namespace bitrun::detail {
namespace {

// GPT-2's reversible byte -> printable character map: printable Latin-1 bytes stand for themselves, the others
// (controls, space, DEL, NBSP, soft hyphen) are moved to U+0100 upwards in byte order.
std::array<char32_t, 256> byte_alphabet() {
  std::array<char32_t, 256> map{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    map[b] = printable ? static_cast<char32_t>(b) : next++;
  }
  return map;
}

class BpeTokenizer final : public Tokenizer {
 public:
  BpeTokenizer(Vocab vocab, BpePreTokenizer pre) : Tokenizer(std::move(vocab)), pre_(pre), specials_(vocab_) {
    // Llama-3's tokenizer.json sets ignore_merges: a word that is itself a token is taken whole, even where the
    // merges would split it differently.
    ignore_merges_ = pre == BpePreTokenizer::Llama3;

    const auto alphabet = byte_alphabet();
    std::unordered_map<char32_t, unsigned char> char_to_byte;
    for (int b = 0; b < 256; ++b) {
      byte_chars_[b].clear();
      unicode::append_utf8(byte_chars_[b], alphabet[b]);
      char_to_byte[alphabet[b]] = static_cast<unsigned char>(b);
      auto id = find_token(byte_chars_[b]);
      byte_tokens_[b] = id ? *id : vocab_.unk;  // a vocab without a byte's token cannot spell it; unk or drop
    }

    const std::size_t n = vocab_.tokens.size();
    pieces_.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      const std::string& text = vocab_.tokens[i];
      switch (token_type(vocab_, static_cast<std::int32_t>(i))) {
        case TokenType::Normal:
        case TokenType::Undefined:
          // Undo the byte alphabet; characters outside it (never in a well-formed vocab) are kept as they are.
          for (const auto& u : unicode::split_utf8(text)) {
            auto it = char_to_byte.find(u.cp);
            if (it != char_to_byte.end()) pieces_[i] += static_cast<char>(it->second);
            else pieces_[i].append(text, u.offset, u.len);
          }
          break;
        case TokenType::UserDefined:  // added tokens are stored as plain text
          pieces_[i] = text;
          break;
        case TokenType::Byte:
          if (auto b = parse_byte_token(text)) pieces_[i] = std::string(1, static_cast<char>(*b));
          else pieces_[i] = text;
          break;
        case TokenType::Unknown:
          pieces_[i] = "\xEF\xBF\xBD";
          break;
        case TokenType::Control:
        case TokenType::Unused:
          break;
      }
    }

    merges_.reserve(vocab_.merges.size());
    for (std::size_t rank = 0; rank < vocab_.merges.size(); ++rank) {
      const std::string& m = vocab_.merges[rank];
      // Split at the first space after the first byte, so a left part that is itself " " still works.
      const std::size_t sp = m.find(' ', 1);
      if (sp == std::string::npos)
        throw FormatError("tokenizer.ggml.merges[" + std::to_string(rank) + "] '" + m + "' is not 'left right'");
      const std::string_view left = std::string_view(m).substr(0, sp), right = std::string_view(m).substr(sp + 1);
      auto l = find_token(left), r = find_token(right);
      if (!l || !r)
        throw FormatError("tokenizer.ggml.merges[" + std::to_string(rank) + "] '" + m + "' names an unknown token");
      // A merge whose result is not a token could only produce bytes llama.cpp would drop; skip it.
      auto result = find_token(std::string(left) + std::string(right));
      if (!result) continue;
      merges_.try_emplace(pair_key(*l, *r), Merge{static_cast<std::int32_t>(rank), *result});  // first rank wins
    }
  }

  std::vector<std::int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const override {
    std::vector<std::int32_t> out;
    if (add_bos && vocab_.add_bos && vocab_.bos >= 0) out.push_back(vocab_.bos);
    if (!parse_special) {
      encode_plain(text, out);
      return out;
    }
    for (const auto& f : specials_.split(text)) {
      if (f.id >= 0) out.push_back(f.id);
      else encode_plain(f.text, out);
    }
    return out;
  }

 private:
  struct Merge {
    std::int32_t rank, result;
  };
  static std::uint64_t pair_key(std::int32_t l, std::int32_t r) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(l)) << 32) | static_cast<std::uint32_t>(r);
  }

  void encode_plain(std::string_view text, std::vector<std::int32_t>& out) const {
    for (auto [begin, end] : pre_tokenize(pre_, text)) encode_word(text.substr(begin, end - begin), out);
  }

  struct Symbol {
    std::int32_t id;            // -1: a byte the vocab has no token for
    std::int32_t prev, next;    // -1 at the ends
  };
  struct Pair {
    std::int32_t rank, left, right;
    std::int32_t left_id, right_id;  // the symbols' tokens when queued; a change means the pair is stale
    std::int32_t result;
    bool operator<(const Pair& o) const { return rank > o.rank || (rank == o.rank && left > o.left); }
  };

  void encode_word(std::string_view word, std::vector<std::int32_t>& out) const {
    if (ignore_merges_ && word.size() > 1) {
      std::string spelled;
      for (char c : word) spelled += byte_chars_[static_cast<unsigned char>(c)];
      auto it = token_ids_.find(spelled);
      if (it != token_ids_.end() && is_text_token(token_type(vocab_, it->second))) {
        out.push_back(it->second);
        return;
      }
    }

    std::vector<Symbol> syms(word.size());
    for (std::size_t i = 0; i < word.size(); ++i)
      syms[i] = {byte_tokens_[static_cast<unsigned char>(word[i])], static_cast<std::int32_t>(i) - 1,
                 i + 1 < word.size() ? static_cast<std::int32_t>(i) + 1 : -1};

    std::priority_queue<Pair> queue;
    auto try_pair = [&](std::int32_t l, std::int32_t r) {
      if (l < 0 || r < 0 || syms[l].id < 0 || syms[r].id < 0) return;
      auto it = merges_.find(pair_key(syms[l].id, syms[r].id));
      if (it != merges_.end()) queue.push({it->second.rank, l, r, syms[l].id, syms[r].id, it->second.result});
    };
    for (std::int32_t i = 1; i < static_cast<std::int32_t>(syms.size()); ++i) try_pair(i - 1, i);

    while (!queue.empty()) {
      const Pair p = queue.top();
      queue.pop();
      Symbol& left = syms[p.left];
      Symbol& right = syms[p.right];
      if (left.id != p.left_id || right.id != p.right_id || left.next != p.right) continue;
      left.id = p.result;
      right.id = -2;  // merged away
      left.next = right.next;
      if (right.next >= 0) syms[right.next].prev = p.left;
      try_pair(left.prev, p.left);
      try_pair(p.left, left.next);
    }

    for (std::int32_t i = word.empty() ? -1 : 0; i >= 0; i = syms[i].next)
      if (syms[i].id >= 0) out.push_back(syms[i].id);
  }

  BpePreTokenizer pre_;
  bool ignore_merges_ = false;
  SpecialTokenSplitter specials_;
  std::array<std::string, 256> byte_chars_;  // each byte's GPT-2 alphabet character, UTF-8
  std::array<std::int32_t, 256> byte_tokens_{};
  std::unordered_map<std::uint64_t, Merge> merges_;  // (left id, right id) -> rank and merged token
};

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(Vocab vocab) {
  auto pre = bpe_pre_tokenizer_from_name(vocab.pre);
  if (!pre)
    throw FormatError("tokenizer: unsupported BPE pre-tokenizer '" + vocab.pre +
                      "' (tokenizer.ggml.pre); supported: llama-bpe, default");
  return std::make_unique<BpeTokenizer>(std::move(vocab), *pre);
}

}  // namespace bitrun::detail
