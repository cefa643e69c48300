// The model-independent half of the tokenizers: validation and the factory, decode, end-of-generation ids,
// special-token splitting, and streaming detokenization.
#include <algorithm>
#include <cstdio>

#include "bitrun/base/error.hpp"
#include "tokenizer/tokenizer_internal.hpp"
#include "tokenizer/unicode.hpp"

namespace bitrun {
namespace detail {

std::optional<unsigned char> parse_byte_token(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return std::nullopt;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = hex(text[3]), lo = hex(text[4]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<unsigned char>(hi * 16 + lo);
}

std::string byte_token_text(unsigned char byte) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "<0x%02X>", byte);
  return buf;
}

SpecialTokenSplitter::SpecialTokenSplitter(const Vocab& vocab) {
  for (std::size_t i = 0; i < vocab.tokens.size(); ++i) {
    const TokenType t = token_type(vocab, static_cast<std::int32_t>(i));
    const std::string& text = vocab.tokens[i];
    if ((t == TokenType::Control || t == TokenType::UserDefined) && !text.empty())
      by_first_byte_[static_cast<unsigned char>(text[0])].emplace_back(text, static_cast<std::int32_t>(i));
  }
  for (auto& bucket : by_first_byte_)
    std::stable_sort(bucket.begin(), bucket.end(),
                     [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

std::vector<SpecialTokenSplitter::Fragment> SpecialTokenSplitter::split(std::string_view text) const {
  std::vector<Fragment> out;
  std::size_t plain_start = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    const auto& bucket = by_first_byte_[static_cast<unsigned char>(text[pos])];
    const std::pair<std::string, std::int32_t>* hit = nullptr;
    for (const auto& cand : bucket)
      if (text.compare(pos, cand.first.size(), cand.first) == 0) {
        hit = &cand;
        break;
      }
    if (!hit) {
      ++pos;
      continue;
    }
    if (pos > plain_start) out.push_back({text.substr(plain_start, pos - plain_start), -1});
    out.push_back({{}, hit->second});
    pos += hit->first.size();
    plain_start = pos;
  }
  if (plain_start < text.size()) out.push_back({text.substr(plain_start), -1});
  return out;
}

}  // namespace detail

namespace {

void check_id(std::int32_t id, const char* what, std::size_t n) {
  if (id < -1 || id >= static_cast<std::int64_t>(n))
    throw FormatError(std::string("tokenizer: ") + what + " token id " + std::to_string(id) +
                      " is outside the vocabulary (" + std::to_string(n) + " tokens)");
}

}  // namespace

Tokenizer::Tokenizer(Vocab vocab) : vocab_(std::move(vocab)) {
  for (const auto& t : vocab_.tokens) max_token_text_bytes_ = std::max(max_token_text_bytes_, t.size());
  token_ids_.reserve(vocab_.tokens.size());
  for (std::size_t i = 0; i < vocab_.tokens.size(); ++i)
    token_ids_.emplace(vocab_.tokens[i], static_cast<std::int32_t>(i));  // emplace keeps the first id of a text

  auto add_eog = [&](std::int32_t id) {
    if (id >= 0 && std::find(end_of_generation_.begin(), end_of_generation_.end(), id) == end_of_generation_.end())
      end_of_generation_.push_back(id);
  };
  add_eog(vocab_.eos);
  add_eog(vocab_.eot);
  // Chat models end a turn with a control token that is often not the file's EOS (Llama-3 instruct: EOS is
  // <|end_of_text|> but turns end with <|eot_id|>), so recognise the usual spellings too.
  for (const char* text : {"<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "</s>", "<|endoftext|>"}) {
    auto id = find_token(text);
    if (id && detail::token_type(vocab_, *id) == TokenType::Control) add_eog(*id);
  }
}

std::unique_ptr<Tokenizer> Tokenizer::create(Vocab vocab) {
  const std::size_t n = vocab.tokens.size();
  if (n == 0) throw FormatError("tokenizer: the vocabulary is empty");
  if (n > static_cast<std::size_t>(INT32_MAX)) throw FormatError("tokenizer: the vocabulary is too large");
  if (!vocab.scores.empty() && vocab.scores.size() != n)
    throw FormatError("tokenizer: " + std::to_string(vocab.scores.size()) + " scores for " + std::to_string(n) +
                      " tokens");
  if (!vocab.types.empty() && vocab.types.size() != n)
    throw FormatError("tokenizer: " + std::to_string(vocab.types.size()) + " token types for " +
                      std::to_string(n) + " tokens");
  for (TokenType t : vocab.types)
    if (static_cast<std::int32_t>(t) < 0 || static_cast<std::int32_t>(t) > 6)
      throw FormatError("tokenizer: invalid token type " + std::to_string(static_cast<std::int32_t>(t)));
  check_id(vocab.bos, "BOS", n);
  check_id(vocab.eos, "EOS", n);
  check_id(vocab.unk, "unknown", n);
  check_id(vocab.pad, "padding", n);
  check_id(vocab.eot, "EOT", n);
  return vocab.model == Vocab::Model::Spm ? detail::make_spm_tokenizer(std::move(vocab))
                                          : detail::make_bpe_tokenizer(std::move(vocab));
}

std::string Tokenizer::token_bytes(std::int32_t id, bool render_special) const {
  if (id < 0 || id >= vocab_size()) throw Error("token id " + std::to_string(id) + " is outside the vocabulary");
  const TokenType t = detail::token_type(vocab_, id);
  if (render_special && (t == TokenType::Control || t == TokenType::Unknown)) return vocab_.tokens[id];
  return pieces_[static_cast<std::size_t>(id)];
}

std::string Tokenizer::decode(std::span<const std::int32_t> ids, bool render_special) const {
  std::string out;
  std::size_t i = 0;
  if (!ids.empty() && vocab_.bos >= 0 && ids[0] == vocab_.bos) i = 1;
  // SentencePiece adds a space in front of the text (the dummy prefix); the first token carries it.
  bool strip_space = vocab_.model == Vocab::Model::Spm && vocab_.add_space_prefix;
  for (; i < ids.size(); ++i) {
    std::string piece = token_bytes(ids[i], render_special);
    if (strip_space && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    strip_space = false;
    out += piece;
  }
  return out;
}

bool Tokenizer::is_end_of_generation(std::int32_t id) const {
  return std::find(end_of_generation_.begin(), end_of_generation_.end(), id) != end_of_generation_.end();
}

std::optional<std::int32_t> Tokenizer::find_token(std::string_view text) const {
  auto it = token_ids_.find(text);
  if (it == token_ids_.end()) return std::nullopt;
  return it->second;
}

StreamingDecoder::StreamingDecoder(const Tokenizer& tokenizer, bool render_special, bool continuation)
    : tokenizer_(tokenizer), render_special_(render_special), first_(!continuation) {}

std::string StreamingDecoder::push(std::int32_t id) {
  const Vocab& v = tokenizer_.vocab();
  if (first_ && v.bos >= 0 && id == v.bos) return {};  // as decode(): a leading BOS is not text
  std::string bytes = tokenizer_.token_bytes(id, render_special_);
  if (first_ && v.model == Vocab::Model::Spm && v.add_space_prefix && !bytes.empty() && bytes[0] == ' ')
    bytes.erase(0, 1);
  first_ = false;
  pending_ += bytes;

  // Emit every complete character; hold back a tail that is the valid start of one still arriving. Ill-formed
  // bytes become U+FFFD so the stream is always valid UTF-8 (it goes into JSON and terminals).
  std::string out;
  std::size_t pos = 0;
  while (pos < pending_.size()) {
    unicode::Utf8Step step = unicode::decode_utf8(pending_, pos);
    if (step.status == unicode::Utf8Step::Status::Incomplete) break;
    if (step.status == unicode::Utf8Step::Status::Ok)
      out.append(pending_, pos, step.len);
    else
      unicode::append_utf8(out, unicode::kReplacement);
    pos += step.len;
  }
  pending_.erase(0, pos);
  return out;
}

std::string StreamingDecoder::flush() {
  std::string out;
  if (!pending_.empty()) unicode::append_utf8(out, unicode::kReplacement);  // pending_ is one incomplete char
  pending_.clear();
  return out;
}

}  // namespace bitrun
