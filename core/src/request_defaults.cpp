#include "bitrun/request_defaults.hpp"

#include "bitrun/config.hpp"
#include "bitrun/model.hpp"
#include "bitrun/sampler.hpp"
#include "bitrun/tokenizer.hpp"

namespace bitrun {

std::int32_t context_size(const Config& config, const Model& model) {
  const std::int64_t ctx = config.get_int("context_size");
  return static_cast<std::int32_t>(ctx > 0 ? ctx : model.hparams().n_ctx_train);
}

DecodeRequest decode_request(const Config& config, const Model& model, std::vector<std::int32_t> prompt,
                             std::int64_t max_tokens) {
  DecodeRequest request;
  request.prompt = std::move(prompt);
  request.max_tokens = static_cast<std::int32_t>(max_tokens);
  request.context_size = context_size(config, model);
  request.sampling = sampling_params_from_config(config);
  request.end_tokens = model.tokenizer().end_of_generation_tokens();
  return request;
}

}  // namespace bitrun
