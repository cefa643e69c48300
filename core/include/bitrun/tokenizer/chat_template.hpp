// Chat templates: turn a list of {role, content} messages into the prompt text a chat model was trained on.
// bitrun does not run Jinja; it recognises which of the families it serves a model's tokenizer.chat_template
// renders (by the marker strings in it) and renders that family natively. Config `chat.template` overrides.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace bitrun {

class Tokenizer;

enum class ChatTemplate {
  // Llama 3: <|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>...
  Llama3,
  // ChatML (Qwen, many fine-tunes): <|im_start|>role\ncontent<|im_end|>\n...
  ChatMl,
  // No special tokens: "System: ...\nUser: ...\nAssistant: ..." (base models, stories260K).
  Plain,
};

struct ChatMessage {
  std::string role;     // "system", "user", "assistant" (others are rendered as given)
  std::string content;
};

// "llama3", "chatml", "plain" -> that family; "auto" -> nullopt (detect from the model). ConfigError otherwise.
std::optional<ChatTemplate> parse_chat_template_name(std::string_view name);
const char* chat_template_name(ChatTemplate t);

// The family a Jinja template renders, recognised by its markers; Plain when empty or unrecognised.
ChatTemplate detect_chat_template(std::string_view jinja);

// The family for a model: `config_name` (auto/llama3/chatml/plain) wins unless "auto"; then the model's
// tokenizer.chat_template; when that is absent or unrecognised, the vocabulary's own turn markers (a control
// <|start_header_id|> or <|im_start|>); else Plain.
ChatTemplate select_chat_template(std::string_view config_name, const Tokenizer& tokenizer);

// The prompt text. add_generation_prompt appends the opening of an assistant turn. Llama3 starts with
// `bos_text` (the text of the BOS token, e.g. "<|begin_of_text|>"), as its official template does; the other
// families leave BOS to the tokenizer. Encode the result with parse_special = true and
// add_bos = !chat_template_has_bos(t); encode_chat() does exactly that.
std::string render_chat(ChatTemplate t, std::span<const ChatMessage> messages, bool add_generation_prompt,
                        std::string_view bos_text = {});
bool chat_template_has_bos(ChatTemplate t);

// render_chat + encode, with the BOS handled as above.
std::vector<std::int32_t> encode_chat(const Tokenizer& tokenizer, ChatTemplate t,
                                      std::span<const ChatMessage> messages, bool add_generation_prompt);

}  // namespace bitrun
