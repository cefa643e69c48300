// `bitrun bench`'s decoder comparison: one set of requests decoded by autoregressive decoding and by each
// block-diffusion mode, through the engine, timed as a whole. Per decoder: tokens/s, tokens and rows per forward,
// the speed ratio to AR, and the tokens per forward it would need to break even with AR (its forward's cost in AR
// tokens). Given a judge model (for example the float teacher of a distilled model), also the quality of each
// decoder's text: the judge's perplexity of the continuations and their distinct-3-gram ratio.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "bitrun/model/model.hpp"
#include "bitrun/plugin/plugin_host.hpp"

namespace bitrun {
class Config;
}

namespace bitrun::cli {

struct BenchPrompt {
  std::string text;                    // as given (empty for a synthetic prompt)
  std::vector<std::int32_t> tokens;    // BOS included
};

struct DecoderRun {
  std::string decoder;                 // "ar" or a diffusion mode
  int threads = 1;
  double seconds = 0;                  // median over the repetitions, all prompts
  std::int64_t tokens = 0, forwards = 0, rows = 0;   // summed over the prompts
  double tok_s() const { return seconds > 0 ? static_cast<double>(tokens) / seconds : 0.0; }
  double tokens_per_forward() const { return forwards ? static_cast<double>(tokens) / static_cast<double>(forwards) : 0.0; }
  double rows_per_forward() const { return forwards ? static_cast<double>(rows) / static_cast<double>(forwards) : 0.0; }
  // A forward of this decoder in AR tokens (AR's tok/s over this decoder's forwards/s): the tokens per forward at
  // which it would decode exactly as fast as AR.
  double break_even_tokens_per_forward(const DecoderRun& ar) const {
    return seconds > 0 && ar.seconds > 0 && forwards ? ar.tok_s() * seconds / static_cast<double>(forwards) : 0.0;
  }
  std::vector<std::vector<std::int32_t>> outputs;   // generated tokens per prompt (first repetition)
  double judge_perplexity = 0;         // 0 when no judge was given
  double distinct_3grams = 0;
};

// The median of bench's timings (the middle value, or the mean of the two middle ones).
double median(std::vector<double> v);

// Prompts for the comparison: every non-empty line of `file`, tokenized with BOS. ConfigError when there is none.
std::vector<BenchPrompt> read_bench_prompts(const std::filesystem::path& file, const Model& model);
// One synthetic 16-token prompt of random ids (never the mask token), for models without a text to prompt with.
BenchPrompt random_bench_prompt(const Model& model);

// Decodes every prompt with AR, then with every other decoder plugin the host found, once per mode it reports
// (Decoder::modes(); labelled by the mode, or by the decoder's name when it has none), greedy argmax, with its
// other settings from `config`; one request at a time, `reps` times, with `threads` threads. With `stop_at_end`, a
// request ends at the model's end-of-generation tokens or after `max_tokens`; without, it decodes exactly
// `max_tokens` (an error if a decoder stops short). The first run is AR.
std::vector<DecoderRun> compare_decoders(const Model& model, const PluginHost& host, const Config& config,
                                         const std::vector<BenchPrompt>& prompts, std::int64_t max_tokens,
                                         bool stop_at_end, int reps, int threads);

// The settings the compared decoders read from the configuration, "key value, key value", for bench's report.
std::string decoder_settings_summary(const PluginHost& host, const Config& config);

// Fills judge_perplexity (the judge's mean NLL over the continuation tokens, each continuation scored after its
// prompt text, as perplexity) and distinct_3grams (distinct word 3-grams / all word 3-grams over the
// continuations) of every run.
void judge_decoder_runs(const Model& model, const Model& judge, const std::vector<BenchPrompt>& prompts,
                        std::vector<DecoderRun>& runs);

}  // namespace bitrun::cli
