// vocab_from_gguf: the tokenizer.ggml.* metadata of a GGUF file as a Vocab, checked key by key.
#include <cmath>

#include "bitrun/base/error.hpp"
#include "bitrun/gguf/gguf.hpp"
#include "tokenizer/bpe_pretokenizer.hpp"
#include "tokenizer/tokenizer_internal.hpp"

namespace bitrun {
namespace {

[[noreturn]] void fail(const GgufFile& file, const std::string& key, const std::string& what) {
  throw FormatError(file.path().string() + ": metadata key '" + key + "' " + what);
}

// Token ids are stored as u32 (sometimes i32); 0xFFFFFFFF and negative values mean "none".
std::int32_t opt_token_id(const GgufFile& file, const std::string& key, std::size_t n_tokens) {
  auto v = file.opt_i64(key);
  if (!v || *v < 0 || *v == 0xFFFFFFFFLL) return -1;
  if (*v >= static_cast<std::int64_t>(n_tokens))
    fail(file, key, "is " + std::to_string(*v) + ", outside the vocabulary of " + std::to_string(n_tokens) +
                        " tokens");
  return static_cast<std::int32_t>(*v);
}

}  // namespace

Vocab vocab_from_gguf(const GgufFile& file) {
  Vocab v;
  const std::string model_key = "tokenizer.ggml.model";
  auto model = file.opt_string(model_key);
  if (!model) fail(file, model_key, "is missing (the file has no tokenizer)");
  if (*model == "llama") v.model = Vocab::Model::Spm;
  else if (*model == "gpt2") v.model = Vocab::Model::Bpe;
  else fail(file, model_key, "names an unsupported tokenizer model '" + *model + "' (supported: llama, gpt2)");

  v.pre = file.opt_string("tokenizer.ggml.pre").value_or("");
  if (v.model == Vocab::Model::Bpe && !detail::bpe_pre_tokenizer_from_name(v.pre))
    fail(file, "tokenizer.ggml.pre",
         "names an unsupported pre-tokenizer '" + v.pre + "' (supported: llama-bpe, default)");

  const std::string tokens_key = "tokenizer.ggml.tokens";
  const auto* tokens = file.opt_string_array(tokens_key);
  if (!tokens) fail(file, tokens_key, "is missing");
  if (tokens->empty()) fail(file, tokens_key, "is empty");
  v.tokens = *tokens;
  const std::size_t n = v.tokens.size();

  const std::string scores_key = "tokenizer.ggml.scores";
  if (const auto* scores = file.opt_number_array(scores_key)) {
    if (scores->size() != n)
      fail(file, scores_key, "has " + std::to_string(scores->size()) + " entries for " + std::to_string(n) + " tokens");
    v.scores.assign(scores->begin(), scores->end());
  }

  const std::string types_key = "tokenizer.ggml.token_type";
  if (const auto* types = file.opt_number_array(types_key)) {
    if (types->size() != n)
      fail(file, types_key, "has " + std::to_string(types->size()) + " entries for " + std::to_string(n) + " tokens");
    v.types.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      const double t = (*types)[i];
      if (!(t >= 0 && t <= 6) || t != std::floor(t))
        fail(file, types_key, "has an invalid token type " + std::to_string(t) + " at index " + std::to_string(i));
      v.types.push_back(static_cast<TokenType>(static_cast<std::int32_t>(t)));
    }
  }

  const std::string merges_key = "tokenizer.ggml.merges";
  if (const auto* merges = file.opt_string_array(merges_key)) v.merges = *merges;
  if (v.model == Vocab::Model::Bpe && v.merges.empty())
    fail(file, merges_key, "is missing (a gpt2 tokenizer needs merges)");

  v.bos = opt_token_id(file, "tokenizer.ggml.bos_token_id", n);
  v.eos = opt_token_id(file, "tokenizer.ggml.eos_token_id", n);
  v.unk = opt_token_id(file, "tokenizer.ggml.unknown_token_id", n);
  v.pad = opt_token_id(file, "tokenizer.ggml.padding_token_id", n);
  v.eot = opt_token_id(file, "tokenizer.ggml.eot_token_id", n);

  // Defaults when the keys are absent follow llama.cpp: SentencePiece vocabs add BOS and the dummy prefix;
  // Llama-3 adds BOS; GPT-2-style vocabs add neither.
  const bool llama3 = v.model == Vocab::Model::Bpe &&
                      detail::bpe_pre_tokenizer_from_name(v.pre) == detail::BpePreTokenizer::Llama3;
  v.add_bos = file.opt_bool("tokenizer.ggml.add_bos_token").value_or(v.model == Vocab::Model::Spm || llama3);
  v.add_space_prefix = file.opt_bool("tokenizer.ggml.add_space_prefix").value_or(v.model == Vocab::Model::Spm);
  v.chat_template = file.opt_string("tokenizer.chat_template").value_or("");
  return v;
}

}  // namespace bitrun
