#include "bitrun/engine/decode_request.hpp"

#include "bitrun/config/config.hpp"
#include "bitrun/model/model.hpp"
#include "bitrun/engine/sampler.hpp"
#include "bitrun/tokenizer/tokenizer.hpp"

namespace bitrun {

ModelFacts model_facts(const Model& model) {
  ModelFacts facts;
  facts.vocab_size = static_cast<std::int32_t>(model.hparams().n_vocab);
  facts.diffusion = model.diffusion();
  if (auto mask = model.mask_token()) {
    facts.mask_token = *mask;
  } else {
    // Fast-dLLM v2 and WrinkleFree both add `|<MASK>|` as a special token; files converted without the metadata
    // key still have it in the vocabulary.
    const std::vector<std::int32_t> ids = model.tokenizer().encode("|<MASK>|", /*add_bos=*/false, /*parse_special=*/true);
    if (ids.size() == 1) facts.mask_token = ids[0];
  }
  return facts;
}

std::int32_t request_context_size(const Config& config, const Model& model) {
  const std::int64_t ctx = config.get_int("context_size");
  return static_cast<std::int32_t>(ctx > 0 ? ctx : model.hparams().n_ctx_train);
}

DecodeRequest make_decode_request(const Config& config, const Model& model, std::vector<std::int32_t> prompt,
                                  std::int64_t max_tokens) {
  DecodeRequest request;
  request.prompt = std::move(prompt);
  request.max_tokens = static_cast<std::int32_t>(max_tokens);
  request.context_size = request_context_size(config, model);
  request.sampling = sampling_params_from_config(config);
  request.end_tokens = model.tokenizer().end_of_generation_tokens();
  request.model = model_facts(model);
  return request;
}

}  // namespace bitrun
