// Hand-written matchers for the BPE pre-tokenizer regexes (see bpe_pretokenizer.hpp). At each position the
// alternatives are tried in order and the first that matches gives the word, as a backtracking regex engine
// would; the comments show which alternative each block stands for. Linear in the text length.
#include "tokenizer/bpe_pretokenizer.hpp"

#include "tokenizer/unicode.hpp"

namespace bitrun::detail {
namespace {

using unicode::CodeUnit;

class Matcher {
 public:
  explicit Matcher(const std::vector<CodeUnit>& u) : u_(u), n_(u.size()) {}

  // Length in code points of the word starting at i (always >= 1).
  std::size_t llama3(std::size_t i) const {
    const char32_t c = cp(i);
    // (?i:'s|'t|'re|'ve|'m|'ll|'d), folding case as a Unicode regex engine does (so "'\u017F" counts too).
    if (std::size_t len = contraction(i, /*ignore_case=*/true)) return len;
    // [^\r\n\p{L}\p{N}]?\p{L}+
    {
      std::size_t j = i;
      if (!is_crlf(c) && !letter(i) && !number(i) && letter(i + 1)) j = i + 1;
      if (letter(j)) return run(j, &Matcher::letter) - i;
    }
    // \p{N}{1,3}
    if (number(i)) {
      std::size_t k = i;
      while (k < n_ && k - i < 3 && number(k)) ++k;
      return k - i;
    }
    // ' '?[^\s\p{L}\p{N}]+[\r\n]*
    {
      const std::size_t j = (c == ' ' && other(i + 1)) ? i + 1 : i;
      if (other(j)) {
        std::size_t k = run(j, &Matcher::other);
        while (k < n_ && is_crlf(cp(k))) ++k;
        return k - i;
      }
    }
    // Only whitespace is left at i. \s*[\r\n]+ : the whitespace run up to and including its last \r or \n.
    const std::size_t end = run(i, &Matcher::space);
    for (std::size_t k = end; k > i; --k)
      if (is_crlf(cp(k - 1))) return k - i;
    return space_tail(i, end);
  }

  std::size_t gpt2(std::size_t i) const {
    const char32_t c = cp(i);
    // 's|'t|'re|'ve|'m|'ll|'d
    if (std::size_t len = contraction(i, /*ignore_case=*/false)) return len;
    // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+'
    for (auto cls : {&Matcher::letter, &Matcher::number, &Matcher::other}) {
      const std::size_t j = (c == ' ' && (this->*cls)(i + 1)) ? i + 1 : i;
      if ((this->*cls)(j)) return run(j, cls) - i;
    }
    return space_tail(i, run(i, &Matcher::space));
  }

 private:
  using Class = bool (Matcher::*)(std::size_t) const;

  char32_t cp(std::size_t i) const { return u_[i].cp; }
  bool letter(std::size_t i) const { return i < n_ && unicode::is_letter(cp(i)); }
  bool number(std::size_t i) const { return i < n_ && unicode::is_number(cp(i)); }
  bool space(std::size_t i) const { return i < n_ && unicode::is_whitespace(cp(i)); }
  bool other(std::size_t i) const { return i < n_ && !unicode::is_whitespace(cp(i)) && !letter(i) && !number(i); }
  static bool is_crlf(char32_t c) { return c == '\r' || c == '\n'; }

  std::size_t run(std::size_t j, Class cls) const {
    while ((this->*cls)(j)) ++j;
    return j;
  }

  std::size_t contraction(std::size_t i, bool ignore_case) const {
    if (cp(i) != '\'' || i + 1 >= n_) return 0;
    auto fold = [&](std::size_t k) -> char32_t {
      if (k >= n_) return 0;
      return ignore_case ? unicode::fold_to_ascii(cp(k)) : cp(k);
    };
    const char32_t a = fold(i + 1), b = fold(i + 2);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
  }

  // \s+(?!\S)|\s+ over the whitespace run [i, end): at the end of the text the whole run; before other text
  // the run minus its last character (which then leads the next word, e.g. " Hello"), unless that is all of it.
  std::size_t space_tail(std::size_t i, std::size_t end) const {
    if (end == n_ || end - i < 2) return end - i;
    return end - 1 - i;
  }

  const std::vector<CodeUnit>& u_;
  std::size_t n_;
};

}  // namespace

std::optional<BpePreTokenizer> bpe_pre_tokenizer_from_name(std::string_view pre) {
  if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3") return BpePreTokenizer::Llama3;
  if (pre.empty() || pre == "default" || pre == "gpt-2" || pre == "gpt2") return BpePreTokenizer::Gpt2;
  return std::nullopt;
}

std::vector<std::pair<std::size_t, std::size_t>> pre_tokenize(BpePreTokenizer kind, std::string_view text) {
  const std::vector<CodeUnit> units = unicode::split_utf8(text);
  const Matcher m(units);
  std::vector<std::pair<std::size_t, std::size_t>> words;
  for (std::size_t i = 0; i < units.size();) {
    const std::size_t len = kind == BpePreTokenizer::Llama3 ? m.llama3(i) : m.gpt2(i);
    const std::size_t end = i + len;
    words.emplace_back(units[i].offset, end < units.size() ? units[end].offset : text.size());
    i = end;
  }
  return words;
}

}  // namespace bitrun::detail
