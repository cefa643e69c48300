// Chat templates: names, detection from Jinja text and from the vocabulary, exact rendering, and encoding.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "bitrun/tokenizer/chat_template.hpp"
#include "bitrun/config/config.hpp"
#include "bitrun/base/error.hpp"
#include "bitrun/gguf/gguf.hpp"
#include "bitrun/tokenizer/tokenizer.hpp"
#include "test_support.hpp"

namespace bitrun {
namespace {

namespace fs = std::filesystem;
using Ids = std::vector<std::int32_t>;

fs::path shared_dir() {
  if (const char* env = std::getenv("BITRUN_SHARED_DIR"); env && *env) return env;
  return fs::path(BITRUN_SOURCE_DIR) / ".." / "shared";
}

const std::vector<ChatMessage> kConversation = {
    {"system", "You are terse."},
    {"user", "Hi!"},
    {"assistant", "Hello."},
    {"user", "Count to 3."},
};

// A SentencePiece vocab with byte tokens, optional extra control tokens and a chat template.
std::unique_ptr<Tokenizer> small_tokenizer(const std::vector<std::string>& controls, std::string jinja) {
  Vocab v = test::byte_fallback_spm_vocab();
  for (const auto& c : controls) {
    v.tokens.push_back(c);
    v.types.push_back(TokenType::Control);
    v.scores.push_back(0.0f);
  }
  v.chat_template = std::move(jinja);
  return Tokenizer::create(std::move(v));
}

TEST(ChatTemplate, NamesParseAndRoundTrip) {
  EXPECT_EQ(parse_chat_template_name("auto"), std::nullopt);
  for (ChatTemplate t : {ChatTemplate::Llama3, ChatTemplate::ChatMl, ChatTemplate::Plain})
    EXPECT_EQ(parse_chat_template_name(chat_template_name(t)), t);
  EXPECT_EQ(parse_chat_template_name("llama3"), ChatTemplate::Llama3);
  EXPECT_EQ(parse_chat_template_name("chatml"), ChatTemplate::ChatMl);
  EXPECT_EQ(parse_chat_template_name("plain"), ChatTemplate::Plain);
  EXPECT_THROW(parse_chat_template_name("vicuna"), ConfigError);
  EXPECT_THROW(parse_chat_template_name("Llama3"), ConfigError);
}

TEST(ChatTemplate, ConfigKeyDefaultsToAutoAndRejectsOtherNames) {
  Config c;
  EXPECT_EQ(c.get_string("chat.template"), "auto");
  c.set_from_cli("chat.template=chatml");
  EXPECT_EQ(c.get_string("chat.template"), "chatml");
  EXPECT_THROW(c.set_from_cli("chat.template=jinja"), ConfigError);
  // Every allowed value of the key is a name the parser knows.
  for (const auto& choice : core_config_schema()->find("chat.template")->choices)
    EXPECT_NO_THROW(parse_chat_template_name(choice)) << choice;
}

TEST(ChatTemplate, DetectsFamiliesFromJinjaMarkers) {
  const std::string llama3 =
      "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' "
      "+ m['content'] | trim + '<|eot_id|>' }}{% endfor %}";
  const std::string chatml =
      "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
      "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  EXPECT_EQ(detect_chat_template(llama3), ChatTemplate::Llama3);
  EXPECT_EQ(detect_chat_template(chatml), ChatTemplate::ChatMl);
  EXPECT_EQ(detect_chat_template(""), ChatTemplate::Plain);
  EXPECT_EQ(detect_chat_template("{{ '[INST] ' + m['content'] + ' [/INST]' }}"), ChatTemplate::Plain);
  EXPECT_EQ(detect_chat_template("<|start_header_id|> alone"), ChatTemplate::Plain) << "both Llama 3 markers";
}

TEST(ChatTemplate, RendersLlama3Exactly) {
  EXPECT_EQ(render_chat(ChatTemplate::Llama3, kConversation, true, "<|begin_of_text|>"),
            "<|begin_of_text|>"
            "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nCount to 3.<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  // Content is trimmed, as the official template does; no generation prompt when not asked.
  const std::vector<ChatMessage> padded = {{"user", "\n  Hi  \n"}};
  EXPECT_EQ(render_chat(ChatTemplate::Llama3, padded, false),
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
  EXPECT_TRUE(chat_template_has_bos(ChatTemplate::Llama3));
}

TEST(ChatTemplate, RendersChatMlExactly) {
  EXPECT_EQ(render_chat(ChatTemplate::ChatMl, kConversation, true, "<s>"),
            "<|im_start|>system\nYou are terse.<|im_end|>\n"
            "<|im_start|>user\nHi!<|im_end|>\n"
            "<|im_start|>assistant\nHello.<|im_end|>\n"
            "<|im_start|>user\nCount to 3.<|im_end|>\n"
            "<|im_start|>assistant\n")
      << "ChatML has no BOS text";
  EXPECT_EQ(render_chat(ChatTemplate::ChatMl, {}, true), "<|im_start|>assistant\n");
  EXPECT_FALSE(chat_template_has_bos(ChatTemplate::ChatMl));
}

TEST(ChatTemplate, RendersPlainExactly) {
  EXPECT_EQ(render_chat(ChatTemplate::Plain, kConversation, true),
            "System: You are terse.\nUser: Hi!\nAssistant: Hello.\nUser: Count to 3.\nAssistant:");
  const std::vector<ChatMessage> tool = {{"tool", "42"}};
  EXPECT_EQ(render_chat(ChatTemplate::Plain, tool, false), "Tool: 42\n");
  EXPECT_FALSE(chat_template_has_bos(ChatTemplate::Plain));
}

TEST(ChatTemplate, SelectionPrefersConfigThenJinjaThenVocabulary) {
  auto chatml_jinja = small_tokenizer({"<|im_start|>", "<|im_end|>"}, "{{ '<|im_start|>' }}");
  EXPECT_EQ(select_chat_template("auto", *chatml_jinja), ChatTemplate::ChatMl);
  EXPECT_EQ(select_chat_template("plain", *chatml_jinja), ChatTemplate::Plain) << "config override wins";
  auto chatml_vocab = small_tokenizer({"<|im_start|>", "<|im_end|>"}, "");
  EXPECT_EQ(select_chat_template("auto", *chatml_vocab), ChatTemplate::ChatMl) << "from the control tokens";
  auto llama3_vocab = small_tokenizer({"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}, "");
  EXPECT_EQ(select_chat_template("auto", *llama3_vocab), ChatTemplate::Llama3);
  auto bare = small_tokenizer({}, "");
  EXPECT_EQ(select_chat_template("auto", *bare), ChatTemplate::Plain);
  EXPECT_THROW(select_chat_template("nope", *bare), ConfigError);
}

TEST(ChatTemplate, EncodesLlama3WithOneBos) {
  const fs::path path = shared_dir() / "tokenizers" / "ggml-vocab-llama-bpe.gguf";
  if (!fs::exists(path)) GTEST_SKIP() << path.string() << " is absent (set BITRUN_SHARED_DIR or provide ../shared)";
  auto tok = Tokenizer::create(vocab_from_gguf(GgufFile::open(path)));
  EXPECT_EQ(select_chat_template("auto", *tok), ChatTemplate::Llama3) << "the vocab-only file has no Jinja";
  const std::vector<ChatMessage> msgs = {{"user", "Hi"}};
  Ids ids = encode_chat(*tok, ChatTemplate::Llama3, msgs, true);
  // <|begin_of_text|> <|start_header_id|> "user" <|end_header_id|> "\n\n" "Hi" <|eot_id|>
  // <|start_header_id|> "assistant" <|end_header_id|> "\n\n"
  EXPECT_EQ(ids, (Ids{128000, 128006, 882, 128007, 271, 13347, 128009, 128006, 78191, 128007, 271}));
  EXPECT_TRUE(tok->is_end_of_generation(128009)) << "a Llama 3 turn ends with <|eot_id|>";
}

TEST(ChatTemplate, EncodesPlainWithTheTokenizersBos) {
  const fs::path path = shared_dir() / "models" / "stories260K.gguf";
  if (!fs::exists(path)) GTEST_SKIP() << path.string() << " is absent (set BITRUN_SHARED_DIR or provide ../shared)";
  auto tok = Tokenizer::create(vocab_from_gguf(GgufFile::open(path)));
  EXPECT_EQ(select_chat_template("auto", *tok), ChatTemplate::Plain);
  const std::vector<ChatMessage> msgs = {{"user", "Once upon a time"}};
  Ids ids = encode_chat(*tok, ChatTemplate::Plain, msgs, true);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), 1) << "BOS from the tokenizer";
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 1);
  EXPECT_EQ(tok->decode(ids), "User: Once upon a time\nAssistant:");
}

}  // namespace
}  // namespace bitrun
