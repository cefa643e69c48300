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
#include <sstream>
#include <vector>

#include "bitrun/decode_request.hpp"
#include "bitrun/engine.hpp"
#include "bitrun/error.hpp"
#include "bitrun/log.hpp"
#include "bitrun/parallel_slices.hpp"
#include "bitrun/kv_cache.hpp"
#include "bitrun/synthetic_model.hpp"
#include "bitrun/transformer.hpp"
#include "commands.hpp"
#include "options.hpp"
#include "runtime.hpp"

namespace bitrun::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
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
    else bytes += static_cast<double>(l.dense.size() * sizeof(float));
  };
  for (const auto& L : m.layers())
    for (const Linear* l : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) add(*l);
  add(m.output());
  return bytes;
}

struct Measurement {
  int threads = 1;
  double prefill_tps = 0, decode_tps = 0, ratio8 = 0, ratio32 = 0, decode_gbs = 0;
};

class Bench {
 public:
  Bench(const Model& model, int reps, std::int64_t prompt, std::int64_t gen)
      : model_(model), tf_(model), reps_(reps), prompt_(prompt), gen_(gen) {
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
    std::vector<double> prefill, decode, t1, t8, t32;
    for (int rep = 0; rep < reps_; ++rep) {
      KvCache cache(model_, prompt_ + gen_ + 64);
      auto start = Clock::now();
      run(cache, 0, prompt_);
      prefill.push_back(seconds_since(start));
      start = Clock::now();
      for (std::int64_t i = 0; i < gen_; ++i) run(cache, prompt_ + i, 1);
      decode.push_back(seconds_since(start));
      // Cost of R rows in one forward (a diffusion block, or R batched sequences) against one row, after a
      // 64-token prefix.
      for (auto [rows, out] : {std::pair{1, &t1}, {8, &t8}, {32, &t32}}) {
        KvCache c(model_, 64 + 32);
        run(c, 0, 64);
        start = Clock::now();
        run(c, 64, rows);
        out->push_back(seconds_since(start));
      }
    }
    r.prefill_tps = static_cast<double>(prompt_) / median(prefill);
    r.decode_tps = static_cast<double>(gen_) / median(decode);
    r.ratio8 = median(t8) / median(t1);
    r.ratio32 = median(t32) / median(t1);
    r.decode_gbs = weight_bytes_per_token(model_) * r.decode_tps / 1e9;
    return r;
  }

 private:
  const Model& model_;
  Transformer tf_;
  int reps_;
  std::int64_t prompt_, gen_;
  std::vector<std::int32_t> tokens_;
  std::vector<float> logits_;
};

// Aggregate decode speed of `sequences` concurrent greedy requests through the engine (each a 16-token prompt,
// then `gen` tokens): every step is one forward with one row per sequence, so they share each weight load.
double concurrent_decode_tps(const Model& model, Decoder& decoder, int sequences, std::int64_t gen) {
  Engine engine(model);
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

struct DecodeSpeed {
  std::string decoder;   // "ar" or the diffusion mode
  double tok_s = 0, tokens_per_forward = 0, rows_per_forward = 0;
};

// One request through the engine: a 16-token prompt, then exactly `gen` greedy tokens (no end token), timed as a
// whole; the median over `reps`. `options` are the request's decoder options (the diffusion mode).
DecodeSpeed engine_decode_speed(const Model& model, Decoder& decoder, const std::string& label,
                                std::map<std::string, std::string> options, std::int64_t gen, int reps) {
  DecodeRequest r;
  r.model = model_facts(model);
  std::mt19937 rng(7);
  std::uniform_int_distribution<std::int32_t> id(3, static_cast<std::int32_t>(model.hparams().n_vocab - 1));
  while (r.prompt.size() < 16)
    if (const std::int32_t t = id(rng); t != r.model.mask_token) r.prompt.push_back(t);
  r.max_tokens = static_cast<std::int32_t>(gen);
  r.context_size = static_cast<std::int32_t>(16 + gen + 64);   // room for a whole last block
  r.decoder_options = std::move(options);
  DecodeSpeed speed{label};
  std::vector<double> times;
  for (int rep = 0; rep < reps; ++rep) {
    Engine engine(model, 0);   // no prefix pool: every repetition computes its prompt
    const auto seq = engine.add(decoder.start(r), r.context_size, nullptr);
    const auto start = Clock::now();
    while (engine.step()) {
    }
    times.push_back(seconds_since(start));
    throw_if_failed(engine, seq);
    const SequenceStats& st = engine.stats(seq);
    if (st.tokens != gen) throw Error("bench: " + label + " decoded " + std::to_string(st.tokens) + " tokens, not " +
                                      std::to_string(gen));
    speed.tokens_per_forward = st.tokens_per_forward();
    speed.rows_per_forward = static_cast<double>(st.rows) / static_cast<double>(st.forwards);
  }
  speed.tok_s = static_cast<double>(gen) / median(times);
  return speed;
}

}  // namespace

int run_bench(const Args& args, char** envp) {
  CommandLine cl = parse_command_line(args, {}, envp,
                                      {{"--preset", ""}, {"--reps", ""}, {"--prompt-tokens", ""},
                                       {"--gen-tokens", ""}, {"--json", ""}, {"--diffusion-tokens", ""}});
  if (cl.help || !cl.positional.empty()) {
    std::cout << "usage: bitrun bench [-m MODEL.gguf | --preset NAME] [--reps N] [--prompt-tokens N]\n"
                 "                    [--gen-tokens N] [--diffusion-tokens N] [--json FILE] [options]\n"
                 "Measures load time, peak RSS, prefill (default 512-token prompt) and decode (default 128\n"
                 "tokens) speed, the cost of 8 and 32 rows per forward against 1, and the decode bandwidth\n"
                 "against this machine's measured read bandwidth, with 1 thread and with --threads (default:\n"
                 "all CPUs), and the aggregate decode speed of 1, 4 and 16 concurrent sequences through the\n"
                 "engine (at most 64 tokens each). On a model with a mask token, one request decoded by AR and\n"
                 "by each diffusion mode (greedy, iterative, adaptive, factor, eb; the other decoder.* settings\n"
                 "from the config): tok/s, tokens and rows per forward for --diffusion-tokens tokens (default 64,\n"
                 "0 skips it). Timings are medians of --reps (default 3). --preset writes\n"
                 "(once, to the temp directory) and uses a synthetic model, e.g. bitnet-2b-4t. --json writes the\n"
                 "results as JSON.\n\n"
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

  const auto load_start = Clock::now();
  Runtime rt = load_runtime(cl.config, model_file);
  const double load_s = seconds_since(load_start);
  const double rss_after_load = peak_rss_bytes();
  const double file_bytes = static_cast<double>(std::filesystem::file_size(model_file));
  if (prompt + gen + 64 > rt.model->hparams().n_ctx_train)
    logger("bench")->warn("prompt + generated tokens exceed the model's training context");
  const int threads_n = rt.backend->threads();

  Bench bench(*rt.model, reps, prompt, gen);
  std::vector<Measurement> results;
  for (int t : threads_n > 1 ? std::vector<int>{1, threads_n} : std::vector<int>{1}) results.push_back(bench.measure(t));
  // Continuous batching: 1, 4 and 16 concurrent sequences, all threads.
  std::unique_ptr<Decoder> decoder = rt.host->create_decoder("ar", cl.config);
  rt.backend->set_threads(threads_n);
  std::vector<std::pair<int, double>> concurrent;
  for (int n : {1, 4, 16})
    concurrent.emplace_back(n, concurrent_decode_tps(*rt.model, *decoder, n, std::min<std::int64_t>(gen, 64)));
  // Block diffusion against AR on the same request, all threads.
  std::vector<DecodeSpeed> decode_speeds;
  std::string diffusion_skipped;
  if (diffusion_tokens == 0) diffusion_skipped = "--diffusion-tokens 0";
  else if (model_facts(*rt.model).mask_token < 0) diffusion_skipped = "the model has no mask token";
  if (diffusion_skipped.empty()) {
    decode_speeds.push_back(engine_decode_speed(*rt.model, *decoder, "ar", {}, diffusion_tokens, reps));
    std::unique_ptr<Decoder> diffusion = rt.host->create_decoder("diffusion", cl.config);
    for (const char* mode : {"greedy", "iterative", "adaptive", "factor", "eb"})
      decode_speeds.push_back(
          engine_decode_speed(*rt.model, *diffusion, mode, {{"mode", mode}}, diffusion_tokens, reps));
  }
  const double peak = peak_rss_bytes();
  std::vector<double> bandwidth;
  for (const auto& r : results) bandwidth.push_back(read_bandwidth_gbs(r.threads));

  std::printf("model %s (%s), backend %s, file %.2f GB\n", rt.model->name().c_str(),
              rt.model->hparams().architecture.c_str(), rt.backend->name().c_str(), file_bytes / 1e9);
  std::printf("load %.2f s, peak RSS %.2f GB after load (%.2fx file), %.2f GB overall\n", load_s, rss_after_load / 1e9,
              rss_after_load / file_bytes, peak / 1e9);
  const std::int64_t kv_bytes = KvCache(*rt.model, 1).bytes_per_position();
  const char* kv_type = kv_cache_type_name(rt.model->kv_cache_type());
  std::printf("KV cache %s: %lld bytes per position (kv_cache.type)\n", kv_type, static_cast<long long>(kv_bytes));
  std::printf("%-8s %14s %13s %10s %11s %12s %12s\n", "threads", "prefill tok/s", "decode tok/s", "t(8)/t(1)",
              "t(32)/t(1)", "decode GB/s", "read GB/s");
  for (std::size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    std::printf("%-8d %14.1f %13.1f %10.2f %11.2f %12.1f %12.1f\n", r.threads, r.prefill_tps, r.decode_tps, r.ratio8,
                r.ratio32, r.decode_gbs, bandwidth[i]);
  }
  std::printf("concurrent greedy decode, %d threads (aggregate tok/s):", threads_n);
  for (const auto& [n, tps] : concurrent) std::printf("  %d seq %.1f", n, tps);
  std::printf("\n");
  if (!diffusion_skipped.empty()) {
    std::printf("diffusion: skipped (%s)\n", diffusion_skipped.c_str());
  } else {
    std::printf("one request, 16-token prompt + %lld tokens, %d threads (decoder.* from the config: block %lld "
                "(0 = the model's), sub-block %lld, threshold %.2f, sub-block cache %s):\n",
                static_cast<long long>(diffusion_tokens), threads_n,
                static_cast<long long>(cl.config.get_int("decoder.block_size")),
                static_cast<long long>(cl.config.get_int("decoder.sub_block_size")),
                cl.config.get_float("decoder.threshold"), cl.config.get_bool("decoder.sub_block_cache") ? "on" : "off");
    std::printf("%-10s %10s %15s %14s %8s\n", "decoder", "tok/s", "tokens/forward", "rows/forward", "vs ar");
    for (const DecodeSpeed& d : decode_speeds)
      std::printf("%-10s %10.1f %15.2f %14.1f %7.2fx\n", d.decoder.c_str(), d.tok_s, d.tokens_per_forward,
                  d.rows_per_forward, d.tok_s / decode_speeds[0].tok_s);
  }
  const std::string json_path = cl.value("--json");
  if (!json_path.empty()) {
    std::ostringstream j;
    j << "{\n  \"model\": \"" << model_file.string() << "\",\n  \"backend\": \"" << rt.backend->name()
      << "\",\n  \"prompt_tokens\": " << prompt << ",\n  \"gen_tokens\": " << gen << ",\n  \"reps\": " << reps
      << ",\n  \"file_bytes\": " << static_cast<std::uint64_t>(file_bytes) << ",\n  \"load_s\": " << load_s
      << ",\n  \"peak_rss_after_load_bytes\": " << static_cast<std::uint64_t>(rss_after_load)
      << ",\n  \"peak_rss_bytes\": " << static_cast<std::uint64_t>(peak) << ",\n  \"kv_cache_type\": \"" << kv_type
      << "\",\n  \"kv_cache_bytes_per_position\": " << kv_bytes << ",\n  \"runs\": [";
    for (std::size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      j << (i ? "," : "") << "\n    {\"threads\": " << r.threads << ", \"prefill_tok_s\": " << r.prefill_tps
        << ", \"decode_tok_s\": " << r.decode_tps << ", \"ratio_8_rows\": " << r.ratio8
        << ", \"ratio_32_rows\": " << r.ratio32 << ", \"decode_gb_s\": " << r.decode_gbs
        << ", \"read_bandwidth_gb_s\": " << bandwidth[i] << "}";
    }
    j << "\n  ],\n  \"concurrent_decode\": [";
    for (std::size_t i = 0; i < concurrent.size(); ++i)
      j << (i ? ", " : "") << "{\"sequences\": " << concurrent[i].first << ", \"tok_s\": " << concurrent[i].second << "}";
    j << "],\n  \"engine_decode\": [";
    for (std::size_t i = 0; i < decode_speeds.size(); ++i) {
      const DecodeSpeed& d = decode_speeds[i];
      j << (i ? ", " : "") << "{\"decoder\": \"" << d.decoder << "\", \"tok_s\": " << d.tok_s
        << ", \"tokens_per_forward\": " << d.tokens_per_forward << ", \"rows_per_forward\": " << d.rows_per_forward
        << "}";
    }
    j << "]\n}\n";
    if (json_path == "-") {
      std::cout << j.str();
    } else {
      std::ofstream out(json_path);
      if (!(out << j.str())) throw Error(json_path + ": cannot write");
    }
  }
  return 0;
}

}  // namespace bitrun::cli
