// Tokenizers: llama.cpp's test-tokenizer-0 vectors for the Llama-3 BPE and Llama-2 SentencePiece vocabs, the
// stories260K vocab, special tokens, streaming detokenization, vocab validation, and the Unicode helpers.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "../core/src/tokenizer/unicode.hpp"
#include "bitrun/base/error.hpp"
#include "bitrun/gguf/gguf.hpp"
#include "bitrun/tokenizer/tokenizer.hpp"
#include "test_support.hpp"

namespace bitrun {
namespace {

using Ids = std::vector<std::int32_t>;
namespace fs = std::filesystem;

fs::path shared_dir() {
  if (const char* env = std::getenv("BITRUN_SHARED_DIR"); env && *env) return env;
  return fs::path(BITRUN_SOURCE_DIR) / ".." / "shared";
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A tokenizer loaded once per test binary (the Llama-3 vocab takes a moment); nullptr when the file is absent.
const Tokenizer* shared_tokenizer(const std::string& relative) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto it = cache.find(relative);
  if (it == cache.end()) {
    const fs::path path = shared_dir() / relative;
    std::unique_ptr<Tokenizer> tok;
    if (fs::exists(path)) tok = Tokenizer::create(vocab_from_gguf(GgufFile::open(path)));
    it = cache.emplace(relative, std::move(tok)).first;
  }
  return it->second.get();
}

#define REQUIRE_TOKENIZER(var, relative)                                                              \
  const Tokenizer* var = shared_tokenizer(relative);                                                  \
  if (!var) GTEST_SKIP() << "shared file " << (shared_dir() / (relative)).string()                  \
                         << " is absent (set BITRUN_SHARED_DIR or provide ../shared)"

// llama.cpp's vector files: the .inp texts are separated by "\n__ggml_vocab_test__\n" (so a text never includes
// the newline before a separator, and the file's last separator is followed by nothing); the .out has one line
// of space-separated ids per text, in order.
struct VectorCase {
  std::string text;
  Ids ids;
};

std::vector<VectorCase> load_vectors(const fs::path& inp_path) {
  const std::string inp = read_file(inp_path);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<VectorCase> cases;
  for (std::size_t pos = 0, next; (next = inp.find(sep, pos)) != std::string::npos; pos = next + sep.size())
    cases.push_back({inp.substr(pos, next - pos), {}});
  std::istringstream out(read_file(fs::path(inp_path).replace_extension(".out")));
  std::string line;
  std::size_t i = 0;
  for (; std::getline(out, line); ++i) {
    if (i >= cases.size()) break;
    std::istringstream ids(line);
    for (std::int32_t id; ids >> id;) cases[i].ids.push_back(id);
  }
  EXPECT_EQ(i, cases.size()) << "the .out file should have one line per .inp case";
  return cases;
}

std::string show(const Ids& ids) {
  std::string s = "[";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ' ';
    s += std::to_string(ids[i]);
  }
  return s + "]";
}

// Runs every vector; returns the number that matched.
int check_vectors(const Tokenizer& tok, const std::string& vocab_file, std::size_t expected_cases) {
  auto cases = load_vectors(shared_dir() / "tokenizers" / (vocab_file + ".inp"));
  EXPECT_EQ(cases.size(), expected_cases);
  int passed = 0;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    Ids got = tok.encode(cases[i].text, /*add_bos=*/false, /*parse_special=*/false);
    EXPECT_EQ(got, cases[i].ids) << vocab_file << " case " << i << " text '" << cases[i].text
                                 << "'\n  got      " << show(got) << "\n  expected " << show(cases[i].ids);
    passed += got == cases[i].ids;
  }
  return passed;
}

TEST(TokenizerVectors, LlamaBpeMatchesLlamaCpp) {
  REQUIRE_TOKENIZER(tok, "tokenizers/ggml-vocab-llama-bpe.gguf");
  EXPECT_EQ(check_vectors(*tok, "ggml-vocab-llama-bpe.gguf", 46), 46);
}

TEST(TokenizerVectors, LlamaSpmMatchesLlamaCpp) {
  REQUIRE_TOKENIZER(tok, "tokenizers/ggml-vocab-llama-spm.gguf");
  EXPECT_EQ(check_vectors(*tok, "ggml-vocab-llama-spm.gguf", 46), 46);
}

TEST(TokenizerVectors, LlamaBpeDecodeRestoresEveryText) {
  REQUIRE_TOKENIZER(tok, "tokenizers/ggml-vocab-llama-bpe.gguf");
  for (const auto& c : load_vectors(shared_dir() / "tokenizers" / "ggml-vocab-llama-bpe.gguf.inp")) {
    EXPECT_EQ(tok->decode(c.ids), c.text);
    EXPECT_EQ(tok->decode(tok->encode(c.text, true, false)), c.text) << "a leading BOS is not text";
  }
}

// SentencePiece prepends a space (the dummy prefix) and decode() removes the first token's leading space. Every
// encoding starts with a token that begins with U+2581 (the prefix itself or a word carrying it), so for these
// texts the round trip is exact, including texts that begin with spaces (" Hello" -> "▁" "▁Hello" -> " Hello").
// What is *not* an inverse is decoding ids that did not come from encode() of a single text: a sequence whose
// first token is, say, "▁Hello" taken from the middle of a text loses that space, exactly as in llama.cpp.
TEST(TokenizerVectors, LlamaSpmDecodeRestoresEveryText) {
  REQUIRE_TOKENIZER(tok, "tokenizers/ggml-vocab-llama-spm.gguf");
  for (const auto& c : load_vectors(shared_dir() / "tokenizers" / "ggml-vocab-llama-spm.gguf.inp")) {
    EXPECT_EQ(tok->decode(c.ids), c.text);
    EXPECT_EQ(tok->decode(tok->encode(c.text, true, false)), c.text);
  }
  auto hello = tok->find_token("\xE2\x96\x81Hello");
  ASSERT_TRUE(hello);
  EXPECT_EQ(tok->decode(Ids{*hello, *hello}), "Hello Hello");
}

TEST(TokenizerGguf, Stories260KEncodesOnceUponATime) {
  REQUIRE_TOKENIZER(tok, "models/stories260K.gguf");
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_EQ(tok->encode("Once upon a time", false, false), (Ids{403, 407, 261, 378}));
  EXPECT_EQ(tok->encode("Once upon a time", true, false), (Ids{1, 403, 407, 261, 378}));
  EXPECT_EQ(tok->decode(Ids{1, 403, 407, 261, 378}), "Once upon a time");
  EXPECT_TRUE(tok->is_end_of_generation(2));
  EXPECT_FALSE(tok->is_end_of_generation(1));
  EXPECT_EQ(tok->vocab().pad, -1) << "padding id 0xFFFFFFFF means none";
}

TEST(TokenizerGguf, LlamaBpeVocabMetadata) {
  REQUIRE_TOKENIZER(tok, "tokenizers/ggml-vocab-llama-bpe.gguf");
  const Vocab& v = tok->vocab();
  EXPECT_EQ(v.model, Vocab::Model::Bpe);
  EXPECT_EQ(v.pre, "llama-bpe");
  EXPECT_EQ(tok->vocab_size(), 128256);
  EXPECT_EQ(v.merges.size(), 280147u);
  EXPECT_EQ(v.bos, 128000);
  EXPECT_EQ(v.eos, 128001);
  EXPECT_TRUE(v.add_bos);
  EXPECT_EQ(tok->encode("Hello", true, false), (Ids{128000, 9906}));
}

TEST(TokenizerGguf, LlamaBpeBuildsAndEncodesQuickly) {
  const fs::path path = shared_dir() / "tokenizers" / "ggml-vocab-llama-bpe.gguf";
  if (!fs::exists(path)) GTEST_SKIP() << path.string() << " is absent";
  auto t0 = std::chrono::steady_clock::now();
  auto tok = Tokenizer::create(vocab_from_gguf(GgufFile::open(path)));
  auto t1 = std::chrono::steady_clock::now();
  // Ordinary text and one very long word: both must stay far from quadratic.
  std::string text;
  while (text.size() < 400000) text += "The quick brown fox jumps over the lazy dog, 1234567 times; isn't it?\n";
  Ids ids = tok->encode(text, false, false);
  Ids word = tok->encode(std::string(100000, 'a'), false, false);
  auto t2 = std::chrono::steady_clock::now();
  if (const Tokenizer* spm = shared_tokenizer("tokenizers/ggml-vocab-llama-spm.gguf")) {
    // SentencePiece sees the whole text as one sequence of merges.
    EXPECT_EQ(spm->decode(spm->encode(text, false, false)), text);
    EXPECT_EQ(spm->decode(spm->encode(std::string(100000, 'a'), false, false)), std::string(100000, 'a'));
  }
  auto t3 = std::chrono::steady_clock::now();
  const double build_s = std::chrono::duration<double>(t1 - t0).count();
  const double encode_s = std::chrono::duration<double>(t2 - t1).count();
  const double spm_s = std::chrono::duration<double>(t3 - t2).count();
  std::cout << "Llama-3 load + build " << build_s << " s; encode 500 KB " << encode_s << " s; SentencePiece "
            << spm_s << " s\n";
  EXPECT_EQ(tok->decode(ids), text);
  EXPECT_EQ(tok->decode(word), std::string(100000, 'a'));
  // Generous bounds (sanitizer and -O0 builds run here too); the point is to catch a quadratic blow-up.
  EXPECT_LT(build_s, 5.0);
  EXPECT_LT(encode_s, 10.0);
  EXPECT_LT(spm_s, 10.0);
}

TEST(TokenizerSpecial, LlamaBpeParsesSpecialTokensOnlyWhenAsked) {
  REQUIRE_TOKENIZER(tok, "tokenizers/ggml-vocab-llama-bpe.gguf");
  const std::string text = "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>";
  Ids special = tok->encode(text, false, true);
  EXPECT_EQ(special, (Ids{128006, 882, 128007, 271, 13347, 128009}));
  EXPECT_EQ(tok->decode(special), "user\n\nHi");
  EXPECT_EQ(tok->decode(special, /*render_special=*/true), text);
  Ids plain = tok->encode(text, false, false);
  for (auto id : plain) EXPECT_LT(id, 128000) << "without parse_special the markers are plain text";
  EXPECT_EQ(tok->decode(plain), text);
  // Plain text between and around specials is encoded exactly as on its own.
  EXPECT_EQ(tok->encode("a<|eot_id|> b", false, true), (Ids{64, 128009, 293}));
  EXPECT_EQ(tok->encode("<|eot_id|><|eot_id|>", false, true), (Ids{128009, 128009}));
}

TEST(TokenizerSpecial, EndOfGenerationAndFindToken) {
  REQUIRE_TOKENIZER(tok, "tokenizers/ggml-vocab-llama-bpe.gguf");
  EXPECT_TRUE(tok->is_end_of_generation(128001));  // EOS <|end_of_text|>
  EXPECT_TRUE(tok->is_end_of_generation(128009));  // <|eot_id|>, a control token with no metadata key
  EXPECT_FALSE(tok->find_token("<|eom_id|>")) << "Llama 3.0 has no <|eom_id|> (3.1 added it)";
  EXPECT_FALSE(tok->is_end_of_generation(128000));
  EXPECT_FALSE(tok->is_end_of_generation(9906));
  EXPECT_EQ(tok->find_token("<|begin_of_text|>"), 128000);
  EXPECT_EQ(tok->find_token("Hello"), 9906);
  EXPECT_FALSE(tok->find_token("no such token here"));
  EXPECT_EQ(tok->token_bytes(128009), "");
  EXPECT_EQ(tok->token_bytes(128009, true), "<|eot_id|>");
  EXPECT_EQ(tok->token_bytes(22691), " Hello");
  EXPECT_THROW(tok->token_bytes(128256), Error);
  EXPECT_THROW(tok->token_bytes(-1), Error);
}

TEST(TokenizerSpecial, SpmSpecialTokensGetTheirOwnDummyPrefix) {
  REQUIRE_TOKENIZER(tok, "tokenizers/ggml-vocab-llama-spm.gguf");
  // As SentencePiece with text spliced around specials: each plain run is encoded on its own, with the prefix.
  Ids ids = tok->encode("Hello</s>Hello", false, true);
  Ids hello = tok->encode("Hello", false, false);
  Ids expected = hello;
  expected.push_back(2);
  expected.insert(expected.end(), hello.begin(), hello.end());
  EXPECT_EQ(ids, expected);
  EXPECT_NE(tok->encode("</s>", false, false), (Ids{2}));
  EXPECT_TRUE(tok->is_end_of_generation(2));
  EXPECT_EQ(tok->decode(Ids{1, 2}, true), "</s>") << "leading BOS skipped, control rendered on request";
}

// ---- Small vocabularies built in code ----

constexpr const char* kSp = "\xE2\x96\x81";  // U+2581

// <unk> <s> </s>, the 256 byte tokens (ids 3..258), then `extra` with their scores.
Vocab spm_vocab(const std::vector<std::pair<std::string, float>>& extra) {
  Vocab v = test::byte_fallback_spm_vocab();
  for (const auto& [text, score] : extra) {
    v.tokens.push_back(text);
    v.types.push_back(TokenType::Normal);
    v.scores.push_back(score);
  }
  return v;
}

std::int32_t byte_id(unsigned char b) { return 3 + b; }

TEST(TokenizerSpm, MergesBestScoreFirstAndFallsBackToBytes) {
  const std::string sa = std::string(kSp) + "a";
  // ids: 259 "▁", 260 "▁a", 261 "ab", 262 "b"
  auto a_first = Tokenizer::create(spm_vocab({{kSp, -5}, {sa, -1}, {"ab", -2}, {"b", -5}}));
  EXPECT_EQ(a_first->encode("ab", false, false), (Ids{260, 262}));
  auto ab_first = Tokenizer::create(spm_vocab({{kSp, -5}, {sa, -2}, {"ab", -1}, {"b", -5}}));
  EXPECT_EQ(ab_first->encode("ab", false, false), (Ids{259, 261}));
  // "é" has no token: its two UTF-8 bytes become byte tokens.
  EXPECT_EQ(ab_first->encode("b\xC3\xA9", false, false), (Ids{259, 262, byte_id(0xC3), byte_id(0xA9)}));
  EXPECT_EQ(ab_first->decode(ab_first->encode("b\xC3\xA9", true, false)), "b\xC3\xA9");
  // Text that spells a control token is still plain text.
  EXPECT_EQ(ab_first->encode("<s>", false, false).size(), 4u);
  EXPECT_EQ(ab_first->encode("", true, false), (Ids{1}));
  EXPECT_TRUE(ab_first->encode("", false, false).empty());
}

TEST(TokenizerSpm, NoDummyPrefixWhenTheVocabSaysSo) {
  Vocab v = spm_vocab({{kSp, -5}, {"a", -1}});
  v.add_space_prefix = false;
  auto tok = Tokenizer::create(std::move(v));
  EXPECT_EQ(tok->encode("a a", false, false), (Ids{260, 259, 260}));
  EXPECT_EQ(tok->decode(Ids{259, 260}), " a") << "no dummy prefix to remove";
}

TEST(TokenizerStreaming, HoldsBackSplitCharactersAndDropsTheDummyPrefix) {
  const std::string sa = std::string(kSp) + "a";
  auto tok = Tokenizer::create(spm_vocab({{kSp, -5}, {sa, -1}}));
  StreamingDecoder s(*tok);
  EXPECT_EQ(s.push(1), "") << "BOS";
  EXPECT_EQ(s.push(260), "a") << "the first token's dummy-prefix space is dropped, as in decode()";
  EXPECT_EQ(s.push(260), " a");
  StreamingDecoder after_prompt(*tok, /*render_special=*/false, /*continuation=*/true);
  EXPECT_EQ(after_prompt.push(260), " a") << "a continuation of a prompt's text keeps the space";
  // "€" = E2 82 AC (3 bytes), "🦙" = F0 9F A6 99 (4 bytes), each arriving one byte token at a time.
  EXPECT_EQ(s.push(byte_id(0xE2)), "");
  EXPECT_EQ(s.push(byte_id(0x82)), "");
  EXPECT_EQ(s.push(byte_id(0xAC)), "\xE2\x82\xAC");
  EXPECT_EQ(s.push(byte_id(0xF0)), "");
  EXPECT_EQ(s.push(byte_id(0x9F)), "");
  EXPECT_EQ(s.push(byte_id(0xA6)), "");
  EXPECT_EQ(s.push(byte_id(0x99)), "\xF0\x9F\xA6\x99");
  // A character completed together with the next text.
  EXPECT_EQ(s.push(byte_id(0xC3)), "");
  EXPECT_EQ(s.push(byte_id(0xA9)), "\xC3\xA9");
  EXPECT_EQ(s.flush(), "");

  // An incomplete tail at the end becomes U+FFFD; a byte that cannot continue it ends it early.
  StreamingDecoder t(*tok);
  EXPECT_EQ(t.push(byte_id(0xF0)), "");
  EXPECT_EQ(t.push(byte_id(0x9F)), "");
  EXPECT_EQ(t.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(t.push(byte_id(0xE2)), "");
  EXPECT_EQ(t.push(byte_id('x')), "\xEF\xBF\xBDx");
  EXPECT_EQ(t.push(byte_id(0x80)), "\xEF\xBF\xBD") << "a stray continuation byte is not held back";

  // The stream of a whole sequence equals decode() of it when the bytes are valid UTF-8.
  Ids ids = tok->encode("a \xE2\x82\xAC\xF0\x9F\xA6\x99 a", false, false);
  StreamingDecoder u(*tok);
  std::string streamed;
  for (auto id : ids) streamed += u.push(id);
  streamed += u.flush();
  EXPECT_EQ(streamed, tok->decode(ids));
  EXPECT_EQ(streamed, "a \xE2\x82\xAC\xF0\x9F\xA6\x99 a");
}

TEST(TokenizerStreaming, LlamaBpeSplitsEmojiAcrossTokens) {
  REQUIRE_TOKENIZER(tok, "tokenizers/ggml-vocab-llama-bpe.gguf");
  const std::string text = " this is \xF0\x9F\xA6\x99.cpp";  // the llama is two tokens: 11410 (3 bytes), 99 247
  Ids ids = tok->encode(text, false, false);
  StreamingDecoder s(*tok);
  std::string streamed;
  for (auto id : ids) {
    std::string piece = s.push(id);
    EXPECT_EQ(unicode::sanitize_utf8(piece), piece) << "never half a character";
    streamed += piece;
  }
  EXPECT_EQ(streamed + s.flush(), text) << "BPE has no dummy prefix: the leading space stays";
}

// A byte-level BPE vocab: the 256 GPT-2 alphabet characters (ids 0..255, in byte order), then merges.
Vocab bpe_vocab(const std::vector<std::string>& merges, const std::string& pre = "llama-bpe") {
  Vocab v;
  v.model = Vocab::Model::Bpe;
  v.pre = pre;
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    std::string s;
    unicode::append_utf8(s, printable ? static_cast<char32_t>(b) : next++);
    v.tokens.push_back(s);
  }
  for (const auto& m : merges) {
    const auto sp = m.find(' ', 1);
    v.tokens.push_back(m.substr(0, sp) + m.substr(sp + 1));
  }
  v.merges = merges;
  v.tokens.push_back("<|end|>");
  v.types.assign(v.tokens.size(), TokenType::Normal);
  v.types.back() = TokenType::Control;
  v.add_bos = false;
  return v;
}

TEST(TokenizerBpe, MergesLowestRankFirst) {
  // "abc": with "b c" ranked before "a b" the result is a + bc, otherwise ab + c.
  auto bc_first = Tokenizer::create(bpe_vocab({"b c", "a b"}));
  EXPECT_EQ(bc_first->encode("abc", false, false), (Ids{'a', 256}));
  auto ab_first = Tokenizer::create(bpe_vocab({"a b", "b c"}));
  EXPECT_EQ(ab_first->encode("abc", false, false), (Ids{256, 'c'}));
  // The space is the alphabet character U+0120 "Ġ" (token 32 here); it leads the next word.
  auto tok = Tokenizer::create(bpe_vocab({"\xC4\xA0 a", "\xC4\xA0" "a b"}));
  EXPECT_EQ(tok->encode("a ab", false, false), (Ids{'a', 257}));
  EXPECT_EQ(tok->token_bytes(257), " ab");
  EXPECT_EQ(tok->encode("a<|end|>", false, true), (Ids{'a', 258}));
  EXPECT_TRUE(tok->is_end_of_generation(258)) << "<|end|> is a control token";
  EXPECT_EQ(tok->decode(tok->encode("\x01\xFF tab\t", false, false)), "\x01\xFF tab\t");
}

TEST(TokenizerBpe, Gpt2AndLlama3PreTokenizersSplitDifferently) {
  // Llama-3 cuts digit runs into groups of three ("123" "45"), so 3 and 4 never meet; GPT-2 keeps "12345" whole.
  auto llama3 = Tokenizer::create(bpe_vocab({"3 4"}, "llama-bpe"));
  auto gpt2 = Tokenizer::create(bpe_vocab({"3 4"}, "default"));
  EXPECT_EQ(llama3->encode("12345", false, false), (Ids{'1', '2', '3', '4', '5'}));
  EXPECT_EQ(gpt2->encode("12345", false, false), (Ids{'1', '2', 256, '5'}));
  // Llama-3's contractions ignore case; GPT-2's do not, so "'S" is punctuation + letter there.
  auto tok3 = Tokenizer::create(bpe_vocab({"' S"}, "llama-bpe"));
  auto tok2 = Tokenizer::create(bpe_vocab({"' S"}, "default"));
  EXPECT_EQ(tok3->encode("'S", false, false), (Ids{256}));
  EXPECT_EQ(tok2->encode("'S", false, false), (Ids{'\'', 'S'}));
  // (?i) folds case the Unicode way, so "'\u017F" (LONG S = C5 BF) is a contraction too: the apostrophe stays in
  // the word and can merge with the first byte ("\xC3\x85" is that byte's alphabet character). llama.cpp's
  // ASCII-only rewrite of the pattern would split it; HF's regex engine does not.
  auto fold3 = Tokenizer::create(bpe_vocab({"' \xC3\x85"}, "llama-bpe"));
  auto fold2 = Tokenizer::create(bpe_vocab({"' \xC3\x85"}, "default"));
  EXPECT_EQ(fold3->encode("'\xC5\xBF", false, false), (Ids{256, 0xBF}));
  EXPECT_EQ(fold2->encode("'\xC5\xBF", false, false), (Ids{'\'', 0xC5, 0xBF}));
}

// ---- Validation ----

std::string format_error(const std::function<void()>& f) { return test::error_message<FormatError>(f); }

TEST(TokenizerValidation, CreateRejectsInconsistentVocabs) {
  auto contains = [](const std::string& msg, const std::string& what) {
    return msg.find(what) != std::string::npos;
  };
  {
    Vocab v = spm_vocab({});
    v.scores.pop_back();
    EXPECT_TRUE(contains(format_error([&] { Tokenizer::create(v); }), "scores"));
  }
  {
    Vocab v = spm_vocab({});
    v.types.push_back(TokenType::Normal);
    EXPECT_TRUE(contains(format_error([&] { Tokenizer::create(v); }), "token types"));
  }
  {
    Vocab v = spm_vocab({});
    v.bos = 100000;
    EXPECT_TRUE(contains(format_error([&] { Tokenizer::create(v); }), "BOS token id 100000"));
  }
  {
    Vocab v;
    v.tokens = {"a", "b"};
    EXPECT_TRUE(contains(format_error([&] { Tokenizer::create(v); }), "byte token <0x00>"));
    v.unk = 0;
    EXPECT_NO_THROW(Tokenizer::create(v)) << "without byte tokens, unknown characters become <unk>";
    EXPECT_EQ(Tokenizer::create(v)->encode("xa", false, false), (Ids{0, 0, 0}));
  }
  {
    Vocab v = bpe_vocab({"a b"}, "qwen2");
    EXPECT_TRUE(contains(format_error([&] { Tokenizer::create(v); }), "unsupported BPE pre-tokenizer 'qwen2'"));
  }
  {
    Vocab v = bpe_vocab({"a b"});
    v.merges.push_back("a zz");
    EXPECT_TRUE(contains(format_error([&] { Tokenizer::create(v); }), "names an unknown token"));
  }
  EXPECT_TRUE(contains(format_error([] { Tokenizer::create(Vocab{}); }), "empty"));
}

struct TempGguf {
  fs::path path;
  explicit TempGguf(const std::string& name) : path(fs::temp_directory_path() / ("bitrun_tok_" + name + ".gguf")) {}
  ~TempGguf() { fs::remove(path); }
};

// A valid little SentencePiece vocab as GGUF metadata; each test breaks one key.
GgufWriter spm_writer() {
  Vocab v = spm_vocab({{kSp, -1}});
  GgufWriter w;
  w.set("general.architecture", GgufValue::string("llama"));
  w.set("tokenizer.ggml.model", GgufValue::string("llama"));
  w.set("tokenizer.ggml.tokens", GgufValue::string_array(v.tokens));
  w.set("tokenizer.ggml.scores", GgufValue::f32_array(v.scores));
  std::vector<std::int32_t> types;
  for (auto t : v.types) types.push_back(static_cast<std::int32_t>(t));
  w.set("tokenizer.ggml.token_type", GgufValue::i32_array(types));
  w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(1));
  w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(2));
  w.set("tokenizer.ggml.unknown_token_id", GgufValue::u32(0));
  w.set("tokenizer.ggml.padding_token_id", GgufValue::u32(0xFFFFFFFFu));
  w.set("tokenizer.ggml.add_space_prefix", GgufValue::boolean(false));
  w.set("tokenizer.chat_template", GgufValue::string("{{ '<|im_start|>' }}"));
  return w;
}

std::string vocab_error(GgufWriter w, const std::string& name) {
  TempGguf f(name);
  w.write(f.path);
  GgufFile file = GgufFile::open(f.path);
  return format_error([&] { vocab_from_gguf(file); });
}

TEST(TokenizerValidation, VocabFromGgufReadsEveryKey) {
  TempGguf f("ok");
  spm_writer().write(f.path);
  Vocab v = vocab_from_gguf(GgufFile::open(f.path));
  EXPECT_EQ(v.model, Vocab::Model::Spm);
  EXPECT_EQ(v.tokens.size(), 260u);
  EXPECT_EQ(v.scores.back(), -1.0f);
  EXPECT_EQ(v.types[1], TokenType::Control);
  EXPECT_EQ(v.bos, 1);
  EXPECT_EQ(v.eos, 2);
  EXPECT_EQ(v.unk, 0);
  EXPECT_EQ(v.pad, -1);
  EXPECT_EQ(v.eot, -1);
  EXPECT_TRUE(v.add_bos) << "SentencePiece default";
  EXPECT_FALSE(v.add_space_prefix);
  EXPECT_EQ(v.chat_template, "{{ '<|im_start|>' }}");
}

TEST(TokenizerValidation, VocabFromGgufNamesTheBadKey) {
  auto expect_key = [](const std::string& msg, const std::string& key, const std::string& what) {
    EXPECT_NE(msg.find("'" + key + "'"), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  };
  {
    GgufWriter w;
    w.set("general.architecture", GgufValue::string("llama"));
    expect_key(vocab_error(w, "nomodel"), "tokenizer.ggml.model", "missing");
  }
  {
    GgufWriter w = spm_writer();
    w.set("tokenizer.ggml.model", GgufValue::string("bert"));
    expect_key(vocab_error(w, "bert"), "tokenizer.ggml.model", "unsupported tokenizer model 'bert'");
  }
  {
    GgufWriter w = spm_writer();
    w.set("tokenizer.ggml.model", GgufValue::string("gpt2"));
    w.set("tokenizer.ggml.pre", GgufValue::string("deepseek-llm"));
    w.set("tokenizer.ggml.merges", GgufValue::string_array({"a b"}));
    expect_key(vocab_error(w, "pre"), "tokenizer.ggml.pre", "unsupported pre-tokenizer 'deepseek-llm'");
  }
  {
    GgufWriter w = spm_writer();
    w.set("tokenizer.ggml.model", GgufValue::string("gpt2"));
    expect_key(vocab_error(w, "nomerges"), "tokenizer.ggml.merges", "missing");
  }
  {
    GgufWriter w = spm_writer();
    w.set("tokenizer.ggml.tokens", GgufValue::u32(5));
    expect_key(vocab_error(w, "tokens"), "tokenizer.ggml.tokens", "expected an array of strings");
  }
  {
    GgufWriter w = spm_writer();
    w.set("tokenizer.ggml.scores", GgufValue::f32_array({1.0f, 2.0f}));
    expect_key(vocab_error(w, "scores"), "tokenizer.ggml.scores", "has 2 entries for 260 tokens");
  }
  {
    GgufWriter w = spm_writer();
    w.set("tokenizer.ggml.token_type", GgufValue::i32_array({1, 2, 3}));
    expect_key(vocab_error(w, "types"), "tokenizer.ggml.token_type", "has 3 entries");
  }
  {
    GgufWriter w = spm_writer();
    w.set("tokenizer.ggml.token_type", GgufValue::i32_array(std::vector<std::int32_t>(260, 9)));
    expect_key(vocab_error(w, "typeval"), "tokenizer.ggml.token_type", "invalid token type");
  }
  {
    GgufWriter w = spm_writer();
    w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(260));
    expect_key(vocab_error(w, "eos"), "tokenizer.ggml.eos_token_id", "outside the vocabulary");
  }
  {
    GgufWriter w = spm_writer();
    w.set("tokenizer.ggml.add_bos_token", GgufValue::u32(1));
    expect_key(vocab_error(w, "addbos"), "tokenizer.ggml.add_bos_token", "expected a bool");
  }
}

// ---- Unicode helpers ----

TEST(Unicode, CategoriesFollowTheRegexClasses) {
  using namespace unicode;
  EXPECT_TRUE(is_letter('a') && is_letter('Z') && is_letter(0x00C4) && is_letter(0x0431) && is_letter(0x6211));
  EXPECT_TRUE(is_letter(0x1780)) << "Khmer KA";
  EXPECT_FALSE(is_letter(0x17B6)) << "Khmer vowel sign AA is a spacing mark (Mc), not \\p{L}";
  EXPECT_FALSE(is_letter('1') || is_letter(' ') || is_letter('\'') || is_letter(0x1F999));
  EXPECT_TRUE(is_number('7') && is_number(0x00BD) && is_number(0x0663) && is_number(0x2167));
  EXPECT_FALSE(is_number('a') || is_number(0xFF5E));
  for (char32_t c : {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000, 0x200A, 0x2028, 0x3000})
    EXPECT_TRUE(is_whitespace(c)) << std::hex << static_cast<std::uint32_t>(c);
  for (char32_t c : {0x1C, 0x1F, 0x200B, 0x200D, 0x78})
    EXPECT_FALSE(is_whitespace(c)) << std::hex << static_cast<std::uint32_t>(c);
}

TEST(Unicode, Utf8DecodingIsStrict) {
  using unicode::decode_utf8;
  using S = unicode::Utf8Step::Status;
  auto step = [](std::string_view s) { return decode_utf8(s, 0); };
  EXPECT_EQ(step("\xF0\x9F\xA6\x99").cp, 0x1F999u);
  EXPECT_EQ(step("\xF0\x9F\xA6\x99").len, 4u);
  EXPECT_EQ(step("\xF0\x9F").status, S::Incomplete);
  EXPECT_EQ(step("\xC0\xAF").status, S::Invalid) << "overlong";
  EXPECT_EQ(step("\xED\xA0\x80").status, S::Invalid) << "surrogate";
  EXPECT_EQ(step("\xF4\x90\x80\x80").status, S::Invalid) << "above U+10FFFF";
  EXPECT_EQ(step("\xE2\x28\xA1").len, 1u) << "maximal ill-formed prefix";
  EXPECT_EQ(unicode::sanitize_utf8("a\xFF" "b\xE2\x82"), "a\xEF\xBF\xBD" "b\xEF\xBF\xBD");
  std::string s;
  for (char32_t c : {0x41u, 0xE9u, 0x20ACu, 0x1F999u}) unicode::append_utf8(s, c);
  EXPECT_EQ(s, "A\xC3\xA9\xE2\x82\xAC\xF0\x9F\xA6\x99");
}

}  // namespace
}  // namespace bitrun
