// Chat template detection, selection and rendering (see chat_template.hpp).
#include "bitrun/tokenizer/chat_template.hpp"

#include "bitrun/base/error.hpp"
#include "bitrun/tokenizer/tokenizer.hpp"

namespace bitrun {
namespace {

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// Jinja's `trim`, which the official Llama 3 template applies to every message.
std::string_view trim(std::string_view s) {
  constexpr std::string_view ws = " \t\n\r\f\v";
  const auto begin = s.find_first_not_of(ws);
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(ws) - begin + 1);
}

bool is_control_token(const Tokenizer& tok, std::string_view text) {
  auto id = tok.find_token(text);
  const auto& types = tok.vocab().types;
  return id && !types.empty() && types[static_cast<std::size_t>(*id)] == TokenType::Control;
}

}  // namespace

std::optional<ChatTemplate> parse_chat_template_name(std::string_view name) {
  if (name == "auto") return std::nullopt;
  if (name == "llama3") return ChatTemplate::Llama3;
  if (name == "chatml") return ChatTemplate::ChatMl;
  if (name == "plain") return ChatTemplate::Plain;
  throw ConfigError("unknown chat template '" + std::string(name) + "' (expected auto, llama3, chatml or plain)");
}

const char* chat_template_name(ChatTemplate t) {
  switch (t) {
    case ChatTemplate::Llama3: return "llama3";
    case ChatTemplate::ChatMl: return "chatml";
    case ChatTemplate::Plain: return "plain";
  }
  return "plain";
}

ChatTemplate detect_chat_template(std::string_view jinja) {
  if (contains(jinja, "<|start_header_id|>") && contains(jinja, "<|end_header_id|>")) return ChatTemplate::Llama3;
  if (contains(jinja, "<|im_start|>")) return ChatTemplate::ChatMl;
  return ChatTemplate::Plain;
}

ChatTemplate select_chat_template(std::string_view config_name, const Tokenizer& tokenizer) {
  if (auto named = parse_chat_template_name(config_name)) return *named;
  const ChatTemplate detected = detect_chat_template(tokenizer.vocab().chat_template);
  if (detected != ChatTemplate::Plain) return detected;
  // Some converted files carry no template; a vocabulary with the turn markers as control tokens still tells.
  if (is_control_token(tokenizer, "<|start_header_id|>") && is_control_token(tokenizer, "<|end_header_id|>"))
    return ChatTemplate::Llama3;
  if (is_control_token(tokenizer, "<|im_start|>") && is_control_token(tokenizer, "<|im_end|>"))
    return ChatTemplate::ChatMl;
  return ChatTemplate::Plain;
}

bool chat_template_has_bos(ChatTemplate t) { return t == ChatTemplate::Llama3; }

std::string render_chat(ChatTemplate t, std::span<const ChatMessage> messages, bool add_generation_prompt,
                        std::string_view bos_text) {
  std::string out;
  switch (t) {
    case ChatTemplate::Llama3:
      out += bos_text;
      for (const auto& m : messages) {
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n";
        out += trim(m.content);
        out += "<|eot_id|>";
      }
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      break;
    case ChatTemplate::ChatMl:
      for (const auto& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      break;
    case ChatTemplate::Plain:
      for (const auto& m : messages) {
        std::string role = m.role;
        if (!role.empty() && role[0] >= 'a' && role[0] <= 'z') role[0] = static_cast<char>(role[0] - 'a' + 'A');
        out += role + ": " + m.content + "\n";
      }
      // No trailing space: the model's next token carries its own leading space.
      if (add_generation_prompt) out += "Assistant:";
      break;
  }
  return out;
}

std::vector<std::int32_t> encode_chat(const Tokenizer& tokenizer, ChatTemplate t,
                                      std::span<const ChatMessage> messages, bool add_generation_prompt) {
  const Vocab& v = tokenizer.vocab();
  const std::string bos_text = v.bos >= 0 && v.add_bos ? v.tokens[static_cast<std::size_t>(v.bos)] : std::string();
  const std::string text = render_chat(t, messages, add_generation_prompt, bos_text);
  return tokenizer.encode(text, /*add_bos=*/!chat_template_has_bos(t), /*parse_special=*/true);
}

}  // namespace bitrun
