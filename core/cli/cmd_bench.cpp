// `bitrun bench`: load time, peak memory, prefill and decode speed, multi-row cost and achieved bandwidth,
// with 1 and N threads, as a readable table and JSON. Every timing is the median of --reps repetitions.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <vector>

#include "bitrun/engine/decode_request.hpp"
#include "bitrun/engine/engine.hpp"
#include "bitrun/base/error.hpp"
#include "bitrun/base/json.hpp"
#include "bitrun/base/log.hpp"
#include "bitrun/base/parallel_slices.hpp"
#include "bitrun/model/kv_cache.hpp"
#include "bitrun/model/synthetic_model.hpp"
#include "bitrun/model/transformer.hpp"
#include "bench_decoders.hpp"
#include "commands.hpp"
#include "options.hpp"
#include "runtime.hpp"

namespace bitrun::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) * 1024.0;
}

// Read bandwidth with `threads` threads over a buffer far larger than the caches (best of 3).
double read_bandwidth_gbs(int threads) {
  const std::size_t n = std::size_t{256} << 20 >> 3;   // 256 MiB of uint64
  std::vector<std::uint64_t> buf(n, 1);
  double best = 0.0;
  for (int rep = 0; rep < 3; ++rep) {
    std::atomic<std::uint64_t> total{0};
    const auto start = Clock::now();
    // Slices of whole groups of eight: independent sums, so the loop is bound by memory, not by one dependency chain.
    parallel_slices(static_cast<std::int64_t>(n / 8), threads, [&](std::int64_t begin, std::int64_t end) {
      std::uint64_t sum = 0;
      for (auto i = static_cast<std::size_t>(begin) * 8; i < static_cast<std::size_t>(end) * 8; i += 8) {
        std::uint64_t s[8];
        for (int j = 0; j < 8; ++j) s[j] = buf[i + static_cast<std::size_t>(j)];
        sum += ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
      }
      total += sum;
    });
    const double s = seconds_since(start);
    if (total != n) throw Error("bandwidth probe: wrong sum");
    best = std::max(best, static_cast<double>(n * 8) / s / 1e9);
  }
  return best;
}

// Bytes one decoded token reads: every packed projection and the output projection (norms are negligible).
double weight_bytes_per_token(const Model& m) {
  double bytes = 0;
  auto add = [&](const Linear& l) {
    if (l.ternary) bytes += static_cast<double>(l.ternary->bytes());
    else if (l.int8) bytes += static_cast<double>(l.int8->bytes());
    else if (l.q6_k) bytes += static_cast<double>(l.q6_k->bytes());
    else bytes += static_cast<double>(l.dense.size() * sizeof(float));
  };
  for (const auto& L : m.layers())
    for (const Linear* l : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) add(*l);
  add(m.output());
  return bytes;
}

// Rows per forward whose cost bench compares with one row's: a diffusion step of a sub-block or a block, or that
// many batched sequences.
constexpr std::int64_t kRowCounts[] = {1, 2, 4, 8, 16, 32};

struct Measurement {
  int threads = 1;
  double prefill_tps = 0, decode_tps = 0, decode_gbs = 0;
  std::vector<double> row_cost;   // t(n rows) / t(1 row) for each of kRowCounts
  double ratio(std::int64_t rows) const {
    for (std::size_t i = 0; i < std::size(kRowCounts); ++i)
      if (kRowCounts[i] == rows) return row_cost[i];
    return 0.0;
  }
};

class Bench {
 public:
  Bench(const Model& model, KvCacheType kv_cache, int reps, std::int64_t prompt, std::int64_t gen)
      : model_(model), kv_cache_(kv_cache), tf_(model), reps_(reps), prompt_(prompt), gen_(gen) {
    std::mt19937 rng(1);
    std::uniform_int_distribution<std::int32_t> id(0, static_cast<std::int32_t>(model.hparams().n_vocab - 1));
    // Enough for the prompt and decode, and for the 64 + 32 rows of the multi-row measurement.
    for (std::int64_t i = 0; i < std::max<std::int64_t>(prompt_ + gen_, 96); ++i) tokens_.push_back(id(rng));
  }

  // Runs rows [start, start + count) of the token stream causally into `cache`; logits of the last row only.
  void run(KvCache& cache, std::int64_t start, std::int64_t count) {
    std::vector<ForwardRow> rows;
    for (std::int64_t i = start; i < start + count; ++i)
      rows.push_back({tokens_[static_cast<std::size_t>(i)], static_cast<std::int32_t>(i), static_cast<std::int32_t>(i + 1), &cache});
    const std::int32_t last = static_cast<std::int32_t>(count - 1);
    logits_.resize(static_cast<std::size_t>(model_.hparams().n_vocab));
    tf_.forward(rows, std::span<const std::int32_t>(&last, 1), logits_.data());
  }

  Measurement measure(int threads) {
    const_cast<Backend&>(model_.backend()).set_threads(threads);
    Measurement r;
    r.threads = threads;
    std::vector<double> prefill, decode;
    std::vector<std::vector<double>> row_times(std::size(kRowCounts));
    for (int rep = 0; rep < reps_; ++rep) {
      KvCache cache(model_, prompt_ + gen_ + 64, kv_cache_);
      auto start = Clock::now();
      run(cache, 0, prompt_);
      prefill.push_back(seconds_since(start));
      start = Clock::now();
      for (std::int64_t i = 0; i < gen_; ++i) run(cache, prompt_ + i, 1);
      decode.push_back(seconds_since(start));
      // Cost of R rows in one forward (a diffusion block, or R batched sequences) against one row, after a
      // 64-token prefix; each timed 8 times per repetition (one forward of a small model is microseconds).
      for (std::size_t i = 0; i < std::size(kRowCounts); ++i) {
        KvCache c(model_, 64 + 32, kv_cache_);
        run(c, 0, 64);
        for (int k = 0; k < 8; ++k) {
          start = Clock::now();
          run(c, 64, kRowCounts[i]);
          row_times[i].push_back(seconds_since(start));
        }
      }
    }
    r.prefill_tps = static_cast<double>(prompt_) / median(prefill);
    r.decode_tps = static_cast<double>(gen_) / median(decode);
    for (const auto& times : row_times) r.row_cost.push_back(median(times) / median(row_times[0]));
    r.decode_gbs = weight_bytes_per_token(model_) * r.decode_tps / 1e9;
    return r;
  }

 private:
  const Model& model_;
  KvCacheType kv_cache_;
  Transformer tf_;
  int reps_;
  std::int64_t prompt_, gen_;
  std::vector<std::int32_t> tokens_;
  std::vector<float> logits_;
};

// Aggregate decode speed of `sequences` concurrent greedy requests through the engine (each a 16-token prompt,
// then `gen` tokens): every step is one forward with one row per sequence, so they share each weight load.
double concurrent_decode_tps(const Model& model, KvCacheType kv_cache, Decoder& decoder, int sequences,
                             std::int64_t gen) {
  Engine engine(model, 4, kv_cache);
  std::mt19937 rng(static_cast<std::uint32_t>(sequences));
  std::uniform_int_distribution<std::int32_t> id(3, static_cast<std::int32_t>(model.hparams().n_vocab - 1));
  std::int64_t tokens = 0;
  std::vector<Engine::SequenceId> ids;
  for (int s = 0; s < sequences; ++s) {
    DecodeRequest r;
    for (int i = 0; i < 16; ++i) r.prompt.push_back(id(rng));
    r.max_tokens = static_cast<std::int32_t>(gen);
    r.context_size = static_cast<std::int32_t>(16 + gen + 1);
    ids.push_back(engine.add(decoder.start(r), r.context_size, [&](Engine::SequenceId, const std::vector<std::int32_t>& t) {
      tokens += static_cast<std::int64_t>(t.size());
    }));
  }
  engine.step();   // the prompts (not timed)
  const std::int64_t after_prefill = tokens;
  const auto start = Clock::now();
  while (engine.step()) {
  }
  for (Engine::SequenceId seq : ids) throw_if_failed(engine, seq);
  return static_cast<double>(tokens - after_prefill) / seconds_since(start);
}

}  // namespace

int run_bench(const Args& args, char** envp) {
  CommandLine cl = parse_command_line(args, {}, envp,
                                      {{"--preset", ""}, {"--reps", ""}, {"--prompt-tokens", ""},
                                       {"--gen-tokens", ""}, {"--json", ""}, {"--diffusion-tokens", ""},
                                       {"--prompts", ""}, {"--judge", ""}});
  if (cl.help || !cl.positional.empty()) {
    std::cout << "usage: bitrun bench [-m MODEL.gguf | --preset NAME] [--reps N] [--prompt-tokens N]\n"
                 "                    [--gen-tokens N] [--diffusion-tokens N] [--prompts FILE [--judge MODEL.gguf]]\n"
                 "                    [--json FILE] [options]\n"
                 "Measures load time, peak RSS, prefill (default 512-token prompt) and decode (default 128\n"
                 "tokens) speed, the cost of a forward of 2, 4, 8, 16 and 32 rows against one row, and the decode\n"
                 "bandwidth against this machine's measured read bandwidth, with 1 thread and with --threads\n"
                 "(default: all CPUs), and the aggregate decode speed of 1, 4 and 16 concurrent sequences through\n"
                 "the engine (at most 64 tokens each).\n"
                 "On a model with a mask token it compares decoders, with 1 thread and with --threads: AR and each\n"
                 "mode of every other decoder plugin (diffusion: greedy, iterative, adaptive, factor, eb; their other\n"
                 "settings from the config) decode the same greedy requests one at a time: tok/s, tokens and rows\n"
                 "per forward, the ratio to AR, and the tokens per forward a mode needs to break even with AR.\n"
                 "The requests: each\n"
                 "line of --prompts FILE, ending at the model's end tokens or after --diffusion-tokens (default\n"
                 "64; 0 skips the comparison); without --prompts, one random 16-token prompt and exactly\n"
                 "--diffusion-tokens tokens. --judge MODEL scores each decoder's text (with --prompts): the\n"
                 "judge's perplexity of the continuations and their distinct word 3-grams.\n"
                 "Timings are medians of --reps (default 3). --preset writes (once, to the temp directory) and\n"
                 "uses a synthetic model, e.g. bitnet-2b-4t. --json writes the results as JSON.\n\n"
              << common_options_help();
    return cl.help ? 0 : 2;
  }
  apply_logging(cl);
  std::filesystem::path model_file;
  const std::string preset = cl.value("--preset");
  if (!preset.empty()) {
    // "-dlm": files written before synthetic models carried a mask token are not reused.
    model_file = std::filesystem::temp_directory_path() / ("bitrun-synth-" + preset + "-dlm.gguf");
    if (!std::filesystem::exists(model_file)) {
      std::fprintf(stderr, "bench: writing synthetic model %s\n", model_file.c_str());
      write_synthetic_model(synthetic_preset(preset), model_file, 42);
    }
  } else {
    model_file = model_path(cl.config);
  }
  const int reps = static_cast<int>(cl.int_value("--reps", 3));
  const std::int64_t prompt = cl.int_value("--prompt-tokens", 512), gen = cl.int_value("--gen-tokens", 128);
  if (reps < 1 || prompt < 1 || gen < 1) throw ConfigError("--reps, --prompt-tokens and --gen-tokens must be >= 1");
  const std::int64_t diffusion_tokens = cl.int_value("--diffusion-tokens", 64);
  if (diffusion_tokens < 0) throw ConfigError("--diffusion-tokens must be >= 0");
  const std::string prompts_file = cl.value("--prompts"), judge_file = cl.value("--judge");
  if (!judge_file.empty() && prompts_file.empty()) throw ConfigError("--judge needs --prompts (text to judge)");

  const auto load_start = Clock::now();
  Runtime rt = load_runtime(*cl.host, cl.config, model_file);
  const double load_s = seconds_since(load_start);
  const double rss_after_load = peak_rss_bytes();
  const double file_bytes = static_cast<double>(std::filesystem::file_size(model_file));
  if (prompt + gen + 64 > rt.model->hparams().n_ctx_train)
    logger("bench")->warn("prompt + generated tokens exceed the model's training context");
  const int threads_n = rt.backend->threads();
  const std::vector<int> thread_counts = threads_n > 1 ? std::vector<int>{1, threads_n} : std::vector<int>{1};

  const KvCacheType kv_cache = kv_cache_type_from_config(cl.config);
  Bench bench(*rt.model, kv_cache, reps, prompt, gen);
  std::vector<Measurement> results;
  for (int t : thread_counts) results.push_back(bench.measure(t));
  // Continuous batching: 1, 4 and 16 concurrent sequences, all threads.
  std::unique_ptr<Decoder> decoder = rt.host->create_decoder("ar", cl.config);
  rt.backend->set_threads(threads_n);
  std::vector<std::pair<int, double>> concurrent;
  for (int n : {1, 4, 16})
    concurrent.emplace_back(n,
                            concurrent_decode_tps(*rt.model, kv_cache, *decoder, n, std::min<std::int64_t>(gen, 64)));
  // Block diffusion against AR on the same requests, per thread count.
  std::vector<std::vector<DecoderRun>> decoder_runs;
  std::string diffusion_skipped;
  if (diffusion_tokens == 0) diffusion_skipped = "--diffusion-tokens 0";
  else if (model_facts(*rt.model).mask_token < 0) diffusion_skipped = "the model has no mask token";
  std::vector<BenchPrompt> prompts;
  if (diffusion_skipped.empty()) {
    prompts = prompts_file.empty() ? std::vector<BenchPrompt>{random_bench_prompt(*rt.model)}
                                   : read_bench_prompts(prompts_file, *rt.model);
    for (int t : thread_counts)
      decoder_runs.push_back(compare_decoders(*rt.model, *rt.host, cl.config, prompts, diffusion_tokens,
                                              /*stop_at_end=*/!prompts_file.empty(), reps, t));
    if (!judge_file.empty()) {
      Runtime judge = load_runtime(*cl.host, cl.config, judge_file);
      for (auto& runs : decoder_runs) judge_decoder_runs(*rt.model, *judge.model, prompts, runs);
    }
    rt.backend->set_threads(threads_n);
  }
  const double peak = peak_rss_bytes();
  std::vector<double> bandwidth;
  for (const auto& r : results) bandwidth.push_back(read_bandwidth_gbs(r.threads));

  std::printf("model %s (%s), backend %s, file %.2f GB\n", rt.model->name().c_str(),
              rt.model->hparams().architecture.c_str(), rt.backend->name().c_str(), file_bytes / 1e9);
  std::printf("load %.2f s, peak RSS %.2f GB after load (%.2fx file), %.2f GB overall\n", load_s, rss_after_load / 1e9,
              rss_after_load / file_bytes, peak / 1e9);
  const std::int64_t kv_bytes = KvCache(*rt.model, 1, kv_cache).bytes_per_position();
  const char* kv_type = kv_cache_type_name(kv_cache);
  std::printf("KV cache %s: %lld bytes per position (kv_cache.type)\n", kv_type, static_cast<long long>(kv_bytes));
  std::printf("%-8s %14s %13s %12s %12s\n", "threads", "prefill tok/s", "decode tok/s", "decode GB/s", "read GB/s");
  for (std::size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    std::printf("%-8d %14.1f %13.1f %12.1f %12.1f\n", r.threads, r.prefill_tps, r.decode_tps, r.decode_gbs,
                bandwidth[i]);
  }
  std::printf("cost of a forward of n rows against one row, t(n)/t(1), after a 64-token prefix:\n%-8s", "threads");
  for (std::int64_t n : kRowCounts) std::printf(" %7s", ("n=" + std::to_string(n)).c_str());
  std::printf("\n");
  for (const auto& r : results) {
    std::printf("%-8d", r.threads);
    for (double c : r.row_cost) std::printf(" %7.2f", c);
    std::printf("\n");
  }
  std::printf("concurrent greedy decode, %d threads (aggregate tok/s):", threads_n);
  for (const auto& [n, tps] : concurrent) std::printf("  %d seq %.1f", n, tps);
  std::printf("\n");
  const bool judged = !judge_file.empty();
  if (!diffusion_skipped.empty()) {
    std::printf("decoders: skipped (%s)\n", diffusion_skipped.c_str());
  } else {
    if (prompts_file.empty())
      std::printf("decoders: one random 16-token prompt + %lld tokens", static_cast<long long>(diffusion_tokens));
    else
      std::printf("decoders: %zu prompts from %s, up to %lld tokens each, ending at end tokens", prompts.size(),
                  prompts_file.c_str(), static_cast<long long>(diffusion_tokens));
    std::printf("; greedy; decoder settings: %s\n", decoder_settings_summary(*cl.host, cl.config).c_str());
    std::printf("%-8s %-10s %9s %7s %9s %9s %8s %11s", "threads", "decoder", "tok/s", "tokens", "tok/fwd", "rows/fwd",
                "vs ar", "break-even");
    if (judged) std::printf(" %10s %10s", "judge ppl", "distinct-3");
    std::printf("\n");
    for (const auto& runs : decoder_runs)
      for (const DecoderRun& d : runs) {
        std::printf("%-8d %-10s %9.1f %7lld %9.2f %9.1f %7.2fx %11.2f", d.threads, d.decoder.c_str(), d.tok_s(),
                    static_cast<long long>(d.tokens), d.tokens_per_forward(), d.rows_per_forward(),
                    d.tok_s() / runs[0].tok_s(), d.break_even_tokens_per_forward(runs[0]));
        if (judged) std::printf(" %10.3f %10.3f", d.judge_perplexity, d.distinct_3grams);
        std::printf("\n");
      }
  }
  const std::string json_path = cl.value("--json");
  if (!json_path.empty()) {
    // Through bitrun::Json: strings escaped, a non-finite ratio written as null.
    Json j = Json::object();
    j["model"] = model_file.string();
    j["backend"] = rt.backend->name();
    j["prompt_tokens"] = Json(static_cast<std::int64_t>(prompt));
    j["gen_tokens"] = Json(static_cast<std::int64_t>(gen));
    j["reps"] = Json(static_cast<std::int64_t>(reps));
    j["file_bytes"] = Json(static_cast<std::int64_t>(file_bytes));
    j["load_s"] = Json(load_s);
    j["peak_rss_after_load_bytes"] = Json(static_cast<std::int64_t>(rss_after_load));
    j["peak_rss_bytes"] = Json(static_cast<std::int64_t>(peak));
    j["kv_cache_type"] = std::string(kv_type);
    j["kv_cache_bytes_per_position"] = Json(static_cast<std::int64_t>(kv_bytes));
    Json runs_json = Json::array();
    for (std::size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      Json run = Json::object();
      run["threads"] = Json(static_cast<std::int64_t>(r.threads));
      run["prefill_tok_s"] = Json(r.prefill_tps);
      run["decode_tok_s"] = Json(r.decode_tps);
      run["ratio_8_rows"] = Json(r.ratio(8));
      run["ratio_32_rows"] = Json(r.ratio(32));
      Json costs = Json::array();
      for (std::size_t k = 0; k < r.row_cost.size(); ++k) {
        Json c = Json::object();
        c["rows"] = Json(static_cast<std::int64_t>(kRowCounts[k]));
        c["ratio"] = Json(r.row_cost[k]);
        costs.push_back(std::move(c));
      }
      run["row_cost"] = std::move(costs);
      run["decode_gb_s"] = Json(r.decode_gbs);
      run["read_bandwidth_gb_s"] = Json(bandwidth[i]);
      runs_json.push_back(std::move(run));
    }
    j["runs"] = std::move(runs_json);
    Json concurrent_json = Json::array();
    for (const auto& [sequences, tok_s] : concurrent) {
      Json c = Json::object();
      c["sequences"] = Json(static_cast<std::int64_t>(sequences));
      c["tok_s"] = Json(tok_s);
      concurrent_json.push_back(std::move(c));
    }
    j["concurrent_decode"] = std::move(concurrent_json);
    j["decoder_prompts"] = prompts_file.empty() ? Json() : Json(prompts_file);
    j["decoder_prompt_count"] = Json(static_cast<std::int64_t>(prompts.size()));
    Json decoders = Json::array();
    for (const auto& runs : decoder_runs)
      for (const DecoderRun& d : runs) {
        Json dj = Json::object();
        dj["threads"] = Json(static_cast<std::int64_t>(d.threads));
        dj["decoder"] = d.decoder;
        dj["tok_s"] = Json(d.tok_s());
        dj["tokens"] = Json(static_cast<std::int64_t>(d.tokens));
        dj["forwards"] = Json(static_cast<std::int64_t>(d.forwards));
        dj["tokens_per_forward"] = Json(d.tokens_per_forward());
        dj["rows_per_forward"] = Json(d.rows_per_forward());
        dj["vs_ar"] = Json(d.tok_s() / runs[0].tok_s());
        dj["break_even_tokens_per_forward"] = Json(d.break_even_tokens_per_forward(runs[0]));
        if (judged) {
          dj["judge_perplexity"] = Json(d.judge_perplexity);
          dj["distinct_3grams"] = Json(d.distinct_3grams);
        }
        decoders.push_back(std::move(dj));
      }
    j["decoders"] = std::move(decoders);
    const std::string text = j.dump() + "\n";
    if (json_path == "-") {
      std::cout << text;
    } else {
      std::ofstream out(json_path);
      if (!(out << text)) throw Error(json_path + ": cannot write");
    }
  }
  return 0;
}

}  // namespace bitrun::cli
