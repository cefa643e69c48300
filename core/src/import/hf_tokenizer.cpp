#include "bitrun/import/hf_tokenizer.hpp"

#include <algorithm>
#include <map>
#include <unordered_map>
#include <vector>

#include "bitrun/base/error.hpp"
#include "bitrun/gguf/gguf.hpp"
#include "bitrun/base/json.hpp"
#include "bitrun/tokenizer/tokenizer.hpp"

namespace bitrun {
namespace {

// Llama 3's split pattern (tokenizer.json spells it as a Split pre-tokenizer before ByteLevel).
constexpr std::string_view kLlama3Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";
// Added tokens a block-diffusion checkpoint uses as its mask.
constexpr std::string_view kMaskSpellings[] = {"|<MASK>|", "<|mask|>", "<|MASK|>", "<mask>", "[MASK]"};

// Every object with "type" == type inside j (pre-tokenizer and normalizer sequences nest).
void find_typed(const Json& j, std::string_view type, std::vector<const Json*>& found) {
  if (j.is_object()) {
    if (const Json* t = j.find("type"); t && t->is_string() && t->as_string() == type) found.push_back(&j);
    for (const auto& [k, v] : j.as_object()) find_typed(v, type, found);
  } else if (j.is_array()) {
    for (const Json& v : j.as_array()) find_typed(v, type, found);
  }
}

bool has_typed(const Json& j, std::string_view type) {
  std::vector<const Json*> found;
  find_typed(j, type, found);
  return !found.empty();
}


// tokenizer_config.json spells special tokens as a string or as {"content": ...}.
std::optional<std::string> token_text(const Json& v) {
  if (v.is_string()) return v.as_string();
  if (v.is_object() && v.get("content").is_string()) return v.get("content").as_string();
  return std::nullopt;
}

bool is_byte_piece(const std::string& s) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f'); };
  return s.size() == 6 && s.compare(0, 3, "<0x") == 0 && hex(s[3]) && hex(s[4]) && s[5] == '>';
}

}  // namespace

std::optional<std::int32_t> hf_token_id(const Json& tokenizer, const std::string& text) {
  if (const Json& added = tokenizer.get("added_tokens"); added.is_array())
    for (const Json& a : added.as_array())
      if (a.get("content").is_string() && a.get("content").as_string() == text && a.get("id").is_integer())
        return static_cast<std::int32_t>(a.get("id").as_int());
  const Json& vocab = tokenizer.get("model").get("vocab");
  if (vocab.is_object()) {
    if (const Json* id = vocab.find(text); id && id->is_integer()) return static_cast<std::int32_t>(id->as_int());
  } else if (vocab.is_array()) {
    const auto& arr = vocab.as_array();
    for (std::size_t i = 0; i < arr.size(); ++i)
      if (arr[i].is_array() && !arr[i].as_array().empty() && arr[i].as_array()[0].is_string() &&
          arr[i].as_array()[0].as_string() == text)
        return static_cast<std::int32_t>(i);
  }
  return std::nullopt;
}

HfTokenizerFacts add_hf_tokenizer(GgufWriter& out, const Json& tok, const Json& config, const Json& model_config,
                                  std::int64_t min_tokens, const std::string& source) {
  auto fail = [&](const std::string& what) -> void { throw FormatError(source + ": " + what); };
  constexpr std::int64_t kMaxTokens = 1 << 24;
  const Json& model = tok.get("model");
  if (!model.is_object()) fail("tokenizer.json has no \"model\" object");
  const std::string type = model.get("type").is_string() ? model.get("type").as_string() : "";

  std::map<std::int64_t, std::string> pieces;
  std::map<std::int64_t, float> scores;
  std::map<std::int64_t, TokenType> types;
  auto add_piece = [&](std::int64_t id, const std::string& text, const std::string& where) {
    if (id < 0 || id >= kMaxTokens) fail(where + " has token id " + std::to_string(id) + " out of range");
    auto [it, fresh] = pieces.emplace(id, text);
    if (!fresh && it->second != text)
      fail(where + ": token id " + std::to_string(id) + " is both '" + it->second + "' and '" + text + "'");
  };

  std::string ggml_model, pre;
  std::vector<std::string> merges;
  const bool byte_level = has_typed(tok.get("pre_tokenizer"), "ByteLevel") || has_typed(tok.get("decoder"), "ByteLevel");
  if (type == "BPE") {
    const Json& vocab = model.get("vocab");
    if (!vocab.is_object()) fail("model.vocab is not an object of token -> id");
    std::unordered_map<std::string, std::int64_t> index;
    for (const auto& [text, id] : vocab.as_object()) {
      if (!id.is_integer()) fail("model.vocab['" + text + "'] is not an integer id");
      add_piece(id.as_int(), text, "model.vocab");
      index.emplace(text, id.as_int());
    }
    const Json& m = model.get("merges");
    if (!m.is_array()) fail("model.merges is not an array");
    for (const Json& e : m.as_array()) {
      if (e.is_string()) merges.push_back(e.as_string());
      else if (e.is_array() && e.as_array().size() == 2 && e.as_array()[0].is_string() && e.as_array()[1].is_string())
        merges.push_back(e.as_array()[0].as_string() + " " + e.as_array()[1].as_string());
      else fail("model.merges holds an entry that is neither \"a b\" nor [\"a\", \"b\"]");
    }
    const bool byte_fallback = model.get("byte_fallback").is_bool() && model.get("byte_fallback").as_bool();
    if (byte_level) {
      ggml_model = "gpt2";
      std::vector<const Json*> splits;
      find_typed(tok.get("pre_tokenizer"), "Split", splits);
      std::vector<const Json*> levels;
      find_typed(tok.get("pre_tokenizer"), "ByteLevel", levels);
      const bool own_regex = !levels.empty() && levels[0]->get("use_regex").is_bool() && levels[0]->get("use_regex").as_bool();
      if (splits.size() == 1 && splits[0]->get("pattern").get("Regex").is_string() &&
          splits[0]->get("pattern").get("Regex").as_string() == kLlama3Pattern)
        pre = "llama-bpe";
      else if (splits.empty() && own_regex)
        pre = "default";
      else
        fail("the byte-level pre-tokenizer is neither Llama 3's split pattern nor GPT-2's (supported: llama-bpe, "
             "default)");
    } else if (byte_fallback) {
      ggml_model = "llama";
      // A merge of rank r makes its piece score -r (the first merge that makes a piece decides).
      for (std::size_t r = 0; r < merges.size(); ++r) {
        const auto space = merges[r].find(' ');
        if (space == std::string::npos) fail("model.merges entry '" + merges[r] + "' has no space");
        const std::string made = merges[r].substr(0, space) + merges[r].substr(space + 1);
        const auto id = index.find(made);
        if (id == index.end())
          fail("model.merges entry '" + merges[r] + "' makes '" + made + "', which is not in the vocabulary");
        scores.emplace(id->second, -static_cast<float>(r));
      }
      merges.clear();   // carried by the scores
    } else {
      fail("a BPE model without byte-level pre-tokenization or byte fallback is not supported");
    }
  } else if (type == "Unigram") {
    ggml_model = "llama";
    const Json& vocab = model.get("vocab");
    if (!vocab.is_array()) fail("model.vocab of a Unigram model is not an array of [piece, score]");
    const auto& arr = vocab.as_array();
    for (std::size_t i = 0; i < arr.size(); ++i) {
      const Json& e = arr[i];
      if (!e.is_array() || e.as_array().size() != 2 || !e.as_array()[0].is_string() || !e.as_array()[1].is_number())
        fail("model.vocab[" + std::to_string(i) + "] is not [piece, score]");
      add_piece(static_cast<std::int64_t>(i), e.as_array()[0].as_string(), "model.vocab");
      scores[static_cast<std::int64_t>(i)] = static_cast<float>(e.as_array()[1].as_double());
    }
  } else {
    fail("model.type '" + type + "' is not supported (BPE, Unigram)");
  }

  const Json& added = tok.get("added_tokens");
  if (added.is_array())
    for (const Json& a : added.as_array()) {
      if (!a.get("id").is_integer() || !a.get("content").is_string()) fail("an added_tokens entry lacks id or content");
      const std::int64_t id = a.get("id").as_int();
      add_piece(id, a.get("content").as_string(), "added_tokens");
      const bool special = a.get("special").is_bool() && a.get("special").as_bool();
      types[id] = special ? TokenType::Control : TokenType::UserDefined;
    }
  if (pieces.empty()) fail("the tokenizer has no tokens");
  const std::int64_t n_defined = pieces.rbegin()->first + 1;
  for (std::int64_t id = 0; id < n_defined; ++id)
    if (!pieces.count(id)) fail("token id " + std::to_string(id) + " is missing (ids must run from 0 without holes)");
  if (n_defined > min_tokens && min_tokens > 0)
    fail("the tokenizer has " + std::to_string(n_defined) + " tokens but the model's embedding only " +
         std::to_string(min_tokens) + " rows");
  const std::int64_t n = std::max(n_defined, min_tokens);

  std::optional<std::string> unk = model.get("unk_token").is_string()
                                       ? std::optional<std::string>(model.get("unk_token").as_string())
                                       : std::nullopt;
  if (type == "Unigram" && model.get("unk_id").is_integer())
    unk = pieces.at(model.get("unk_id").as_int());
  std::vector<std::string> tokens(static_cast<std::size_t>(n));
  std::vector<std::int32_t> token_types(static_cast<std::size_t>(n));
  std::vector<float> token_scores(static_cast<std::size_t>(n), 0.0f);
  const float lowest = -static_cast<float>(std::max<std::size_t>(1, scores.size()) + 1);
  for (std::int64_t id = 0; id < n; ++id) {
    const auto i = static_cast<std::size_t>(id);
    if (id >= n_defined) {
      tokens[i] = "[PAD" + std::to_string(id) + "]";
      token_types[i] = static_cast<std::int32_t>(TokenType::Unused);
      continue;
    }
    tokens[i] = pieces.at(id);
    TokenType t = TokenType::Normal;
    if (types.count(id)) t = types.at(id);
    else if (ggml_model == "llama" && is_byte_piece(tokens[i])) t = TokenType::Byte;
    if (unk && tokens[i] == *unk) t = TokenType::Unknown;
    token_types[i] = static_cast<std::int32_t>(t);
    if (ggml_model == "llama") token_scores[i] = scores.count(id) ? scores.at(id) : (type == "BPE" ? lowest : 0.0f);
  }

  out.set("tokenizer.ggml.model", GgufValue::string(ggml_model));
  if (!pre.empty()) out.set("tokenizer.ggml.pre", GgufValue::string(pre));
  out.set("tokenizer.ggml.tokens", GgufValue::string_array(tokens));
  out.set("tokenizer.ggml.token_type", GgufValue::i32_array(token_types));
  if (ggml_model == "llama") out.set("tokenizer.ggml.scores", GgufValue::f32_array(token_scores));
  if (!merges.empty()) out.set("tokenizer.ggml.merges", GgufValue::string_array(merges));

  // Special tokens: tokenizer_config.json by text, else config.json by id.
  auto id_of = [&](const std::string& text, const std::string& key) -> std::uint32_t {
    const auto id = hf_token_id(tok, text);
    if (!id) fail(key + " '" + text + "' is not a token of tokenizer.json");
    return static_cast<std::uint32_t>(*id);
  };
  auto special = [&](const std::string& name, const std::string& gguf_key) {
    if (auto text = token_text(config.get(name + "_token"))) {
      out.set(gguf_key, GgufValue::u32(id_of(*text, "tokenizer_config.json " + name + "_token")));
      return;
    }
    const Json& id = model_config.get(name + "_token_id");
    const Json& first = id.is_array() && !id.as_array().empty() ? id.as_array()[0] : id;
    if (first.is_integer()) {
      if (first.as_int() < 0 || first.as_int() >= n) fail("config.json " + name + "_token_id is not a token id");
      out.set(gguf_key, GgufValue::u32(static_cast<std::uint32_t>(first.as_int())));
    }
  };
  special("bos", "tokenizer.ggml.bos_token_id");
  special("eos", "tokenizer.ggml.eos_token_id");
  special("pad", "tokenizer.ggml.padding_token_id");
  if (unk) out.set("tokenizer.ggml.unknown_token_id", GgufValue::u32(id_of(*unk, "model.unk_token")));

  if (config.get("add_bos_token").is_bool())
    out.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(config.get("add_bos_token").as_bool()));
  else if (has_typed(tok.get("post_processor"), "TemplateProcessing"))
    out.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(true));
  if (ggml_model == "llama") {
    bool prefix = false;
    std::vector<const Json*> found;
    find_typed(tok.get("normalizer"), "Prepend", found);
    for (const Json* p : found) prefix |= p->get("prepend").is_string() && p->get("prepend").as_string() == "\xe2\x96\x81";
    found.clear();
    find_typed(tok.get("pre_tokenizer"), "Metaspace", found);
    for (const Json* p : found)
      prefix |= (p->get("add_prefix_space").is_bool() && p->get("add_prefix_space").as_bool()) ||
                (p->get("prepend_scheme").is_string() && p->get("prepend_scheme").as_string() != "never");
    out.set("tokenizer.ggml.add_space_prefix", GgufValue::boolean(prefix));
  }
  const Json& tmpl = config.get("chat_template");
  if (tmpl.is_string()) {
    out.set("tokenizer.chat_template", GgufValue::string(tmpl.as_string()));
  } else if (tmpl.is_array()) {
    for (const Json& t : tmpl.as_array())
      if (t.get("name").is_string() && t.get("name").as_string() == "default" && t.get("template").is_string())
        out.set("tokenizer.chat_template", GgufValue::string(t.get("template").as_string()));
  }

  HfTokenizerFacts facts;
  facts.n_tokens = n;
  for (std::string_view m : kMaskSpellings)
    if (auto id = hf_token_id(tok, std::string(m))) facts.mask_token = *id;
  return facts;
}

}  // namespace bitrun
