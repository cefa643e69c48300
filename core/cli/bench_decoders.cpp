#include "bench_decoders.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "bitrun/config/config.hpp"
#include "bitrun/engine/decode_request.hpp"
#include "bitrun/engine/engine.hpp"
#include "bitrun/model/kv_cache.hpp"
#include "bitrun/base/error.hpp"
#include "bitrun/model/perplexity.hpp"
#include "bitrun/engine/sampler.hpp"
#include "bitrun/tokenizer/tokenizer.hpp"
#include "bitrun/model/transformer.hpp"
#include "runtime.hpp"

namespace bitrun::cli {
namespace {

// The baseline every other decoder is compared with.
constexpr const char* kBaselineDecoder = "ar";

// Every prompt through `decoder` once per repetition, one request at a time, each in a fresh engine (no prefix
// reuse, so every repetition computes its prompts).
DecoderRun run_decoder(const Model& model, Decoder& decoder, const Config& config, const std::string& label,
                       const std::map<std::string, std::string>& options, const std::vector<BenchPrompt>& prompts,
                       std::int64_t max_tokens, bool stop_at_end, int reps, int threads) {
  DecoderRun run;
  run.decoder = label;
  run.threads = threads;
  std::vector<double> times;
  for (int rep = 0; rep < reps; ++rep) {
    std::int64_t tokens = 0, forwards = 0, rows = 0;
    double seconds = 0;
    for (const BenchPrompt& prompt : prompts) {
      DecodeRequest r = make_decode_request(config, model, prompt.tokens, max_tokens);
      r.sampling = SamplingParams{};   // greedy: the comparison is deterministic
      r.context_size = static_cast<std::int32_t>(
          std::min<std::int64_t>(r.context_size, static_cast<std::int64_t>(prompt.tokens.size()) + max_tokens + 64));
      if (!stop_at_end) r.end_tokens.clear();
      r.decoder_options = options;
      Engine engine(model, 0, kv_cache_type_from_config(config));
      std::vector<std::int32_t> out;
      const auto seq = engine.add(decoder.start(r), r.context_size,
                                  [&](Engine::SequenceId, const std::vector<std::int32_t>& t) {
                                    out.insert(out.end(), t.begin(), t.end());
                                  });
      const auto start = std::chrono::steady_clock::now();
      while (engine.step()) {
      }
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      throw_if_failed(engine, seq);
      const SequenceStats& st = engine.stats(seq);
      if (!stop_at_end && st.tokens != max_tokens)
        throw Error("bench: " + label + " decoded " + std::to_string(st.tokens) + " tokens, not " +
                    std::to_string(max_tokens));
      tokens += st.tokens, forwards += st.forwards, rows += st.rows;
      if (rep == 0) run.outputs.push_back(std::move(out));
    }
    times.push_back(seconds);
    run.tokens = tokens, run.forwards = forwards, run.rows = rows;   // greedy: the same every repetition
  }
  run.seconds = median(times);
  return run;
}

std::vector<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

}  // namespace

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::vector<BenchPrompt> read_bench_prompts(const std::filesystem::path& file, const Model& model) {
  std::ifstream in(file);
  if (!in) throw ConfigError("--prompts: cannot read " + file.string());
  std::stringstream text;
  text << in.rdbuf();
  std::vector<BenchPrompt> prompts;
  for (std::string& line : nonempty_lines(text.str(), 0)) {
    BenchPrompt p;
    p.tokens = model.tokenizer().encode(line, /*add_bos=*/true, /*parse_special=*/false);
    p.text = std::move(line);
    if (p.tokens.empty()) throw ConfigError("--prompts: the model has no BOS token and a prompt encodes to nothing");
    prompts.push_back(std::move(p));
  }
  if (prompts.empty()) throw ConfigError("--prompts: " + file.string() + " has no non-empty line");
  return prompts;
}

BenchPrompt random_bench_prompt(const Model& model) {
  BenchPrompt p;
  const std::int32_t mask = model_facts(model).mask_token;
  std::mt19937 rng(7);
  std::uniform_int_distribution<std::int32_t> id(3, static_cast<std::int32_t>(model.hparams().n_vocab - 1));
  while (p.tokens.size() < 16)
    if (const std::int32_t t = id(rng); t != mask) p.tokens.push_back(t);
  return p;
}

std::vector<DecoderRun> compare_decoders(const Model& model, const PluginHost& host, const Config& config,
                                         const std::vector<BenchPrompt>& prompts, std::int64_t max_tokens,
                                         bool stop_at_end, int reps, int threads) {
  const_cast<Backend&>(model.backend()).set_threads(threads);
  std::vector<DecoderRun> runs;
  std::unique_ptr<Decoder> baseline = host.create_decoder(kBaselineDecoder, config);
  runs.push_back(
      run_decoder(model, *baseline, config, kBaselineDecoder, {}, prompts, max_tokens, stop_at_end, reps, threads));
  for (const PluginRecord& record : host.plugins()) {
    if (!record.usable() || record.kind != PluginKind::Decoder || record.name == kBaselineDecoder) continue;
    std::unique_ptr<Decoder> decoder = host.create_decoder(record.name, config);
    const std::vector<std::string> modes = decoder->modes();
    if (modes.empty())
      runs.push_back(
          run_decoder(model, *decoder, config, record.name, {}, prompts, max_tokens, stop_at_end, reps, threads));
    for (const std::string& mode : modes)
      runs.push_back(run_decoder(model, *decoder, config, mode, {{"mode", mode}}, prompts, max_tokens, stop_at_end,
                                 reps, threads));
  }
  return runs;
}

std::string decoder_settings_summary(const PluginHost& host, const Config& config) {
  std::string out;
  for (const PluginRecord& record : host.plugins())
    if (record.usable() && record.kind == PluginKind::Decoder)
      for (const ConfigKey& key : record.settings)
        out += (out.empty() ? "" : ", ") + key.path + " " + config_value_yaml(config.value(key.path));
  return out.empty() ? "none" : out;
}

void judge_decoder_runs(const Model& model, const Model& judge, const std::vector<BenchPrompt>& prompts,
                        std::vector<DecoderRun>& runs) {
  const Tokenizer& tok = model.tokenizer();
  Transformer judge_tf(judge);
  for (DecoderRun& run : runs) {
    // Each line: the prompt's text and its continuation, decoded together so the joint keeps its spacing; the
    // judge scores only what follows the prompt's tokens (its own tokenization of the prompt text).
    std::vector<std::string> lines;
    std::vector<std::size_t> prompt_tokens;
    std::map<std::vector<std::string>, int> trigrams;
    std::int64_t trigram_count = 0;
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      const std::vector<std::int32_t>& out = run.outputs[i];
      const std::vector<std::string> w = words(tok.decode(out));
      for (std::size_t k = 0; k + 3 <= w.size(); ++k, ++trigram_count) ++trigrams[{w[k], w[k + 1], w[k + 2]}];
      if (out.empty()) continue;
      std::vector<std::int32_t> all = prompts[i].tokens;
      all.insert(all.end(), out.begin(), out.end());
      std::string line = tok.decode(all);
      std::replace(line.begin(), line.end(), '\n', ' ');
      lines.push_back(line);
      prompt_tokens.push_back(judge.tokenizer().encode(tok.decode(prompts[i].tokens), /*add_bos=*/true, false).size());
    }
    run.distinct_3grams = trigram_count ? static_cast<double>(trigrams.size()) / static_cast<double>(trigram_count) : 0.0;
    double nll = 0;
    std::int64_t scored = 0;
    std::size_t line_index = 0;
    const auto vocab = static_cast<std::size_t>(judge.hparams().n_vocab);
    score_lines(judge_tf, lines, judge.hparams().n_ctx_train,
                [&](std::span<const std::int32_t> ids, std::span<const float> logits) {
                  if (line_index >= prompt_tokens.size()) throw Error("bench: the judge scored more lines than given");
                  const std::size_t skip = prompt_tokens[line_index++];
                  for (std::size_t r = skip ? skip - 1 : 0; r + 1 < ids.size(); ++r) {
                    const std::span<const float> row = logits.subspan(r * vocab, vocab);
                    nll += log_sum_exp(row) - row[static_cast<std::size_t>(ids[r + 1])];
                    ++scored;
                  }
                });
    run.judge_perplexity = scored ? std::exp(nll / static_cast<double>(scored)) : 0.0;
  }
}

}  // namespace bitrun::cli
