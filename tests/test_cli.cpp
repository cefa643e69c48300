// The bitrun executable end to end: info lists the plugins and picks a backend; a config file switches the
// backend without a rebuild; config errors exit non-zero with the key named.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>
#include <vector>

#include "bitrun/base/cpu_features.hpp"
#include "bitrun/base/json.hpp"

namespace {

struct Result {
  int status;
  std::string output;
};

// bitrun with `args`; with `stdin_text`, that text arrives on its standard input through a pipe.
Result run(const std::string& args, const std::string& stdin_text = "") {
  std::string command = std::string(BITRUN_EXE) + " " + args + " 2>&1";
  if (!stdin_text.empty()) command = "printf '%s' '" + stdin_text + "' | " + command;
  FILE* pipe = popen(command.c_str(), "r");
  Result r{-1, {}};
  if (!pipe) return r;
  std::array<char, 4096> buf;
  while (std::size_t n = fread(buf.data(), 1, buf.size(), pipe)) r.output.append(buf.data(), n);
  int status = pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

const std::string kConfigs = std::string(BITRUN_SOURCE_DIR) + "/configs/";

TEST(Cli, InfoListsBothBackendPluginsAndChoosesOne) {
  Result r = run("info");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("backend   avx2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("backend   avx512"), std::string::npos) << r.output;
  using bitrun::CpuFeature;
  const auto& cpu = bitrun::detect_cpu();
  if (cpu.has(CpuFeature::AVX512BW) && cpu.has(CpuFeature::AVX512_VNNI) && cpu.has(CpuFeature::AVX512VL)) {
    EXPECT_NE(r.output.find("Backend chosen: avx512"), std::string::npos) << r.output;
  }
}

TEST(Cli, ConfigFileForcesAvx2WithoutRebuild) {
  if (!bitrun::detect_cpu().has(bitrun::CpuFeature::AVX2)) GTEST_SKIP() << "no AVX2 on this CPU";
  Result r = run("info -c " + kConfigs + "force-avx2.yaml");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("Backend chosen: avx2 (forced by configuration)"), std::string::npos) << r.output;
}

TEST(Cli, ForcingAnUnrunnableBackendFailsClearly) {
  Result r = run("info --backend avx512 --set cpu.disable=avx512f");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("backend 'avx512' cannot run on this CPU"), std::string::npos) << r.output;
}

TEST(Cli, ConfigPrintShowsOriginsAndErrorsNameTheKey) {
  Result r = run("config --print -c " + kConfigs + "force-avx2.yaml --threads 3");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("threads: 3   # from command line"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("backend: \"avx2\"   # from " + kConfigs + "force-avx2.yaml"), std::string::npos)
      << r.output;

  Result bad = run("config --print --set server.prot=80");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.output.find("unknown key 'server.prot'"), std::string::npos) << bad.output;

  Result env = run("config --print --no-origins");
  EXPECT_EQ(env.status, 0);
}

TEST(Cli, GenerateConfigWritesALoadableFile) {
  auto path = std::filesystem::temp_directory_path() / "bitrun_generated.yaml";
  std::filesystem::remove(path);
  Result r = run("generate-config " + path.string());
  ASSERT_EQ(r.status, 0) << r.output;
  Result again = run("generate-config " + path.string());
  EXPECT_NE(again.status, 0) << "must not overwrite without --force";
  Result check = run("config --check -c " + path.string());
  EXPECT_EQ(check.status, 0) << check.output;
  std::filesystem::remove(path);
}

// threads_wait reaches libgomp (which prints its settings under OMP_DISPLAY_ENV): this also proves the executable
// does not load the OpenMP runtime before the plugin host has set the policy. The environment's own setting wins.
TEST(Cli, ThreadsWaitSetsTheOpenMpWaitPolicy) {
  ::unsetenv("OMP_WAIT_POLICY");
  ::unsetenv("GOMP_SPINCOUNT");
  ::setenv("OMP_DISPLAY_ENV", "true", 1);
  const std::string generate = "generate -p hi -n 2 --set sampling.temperature=0 --log-level debug --set threads_wait=";
  Result spin = run(generate + "spin");
  Result sleep = run(generate + "sleep");
  ::setenv("OMP_WAIT_POLICY", "active", 1);
  Result user = run(generate + "sleep");
  ::unsetenv("OMP_WAIT_POLICY");
  ::unsetenv("OMP_DISPLAY_ENV");
  ASSERT_EQ(spin.status, 0) << spin.output;
  EXPECT_NE(spin.output.find("OMP_WAIT_POLICY = 'ACTIVE'"), std::string::npos) << spin.output;
  ASSERT_EQ(sleep.status, 0) << sleep.output;
  EXPECT_NE(sleep.output.find("OMP_WAIT_POLICY = 'PASSIVE'"), std::string::npos) << sleep.output;
  ASSERT_EQ(user.status, 0) << user.output;
  EXPECT_NE(user.output.find("OMP_WAIT_POLICY = 'ACTIVE'"), std::string::npos) << user.output;
  EXPECT_NE(user.output.find("OMP_WAIT_POLICY=active takes precedence"), std::string::npos) << user.output;
  Result bad = run("generate -p hi -n 1 --set threads_wait=yield");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("threads_wait"), std::string::npos) << bad.output;
}

TEST(Cli, UnknownCommandsAndOptionsAreErrors) {
  EXPECT_EQ(run("frobnicate").status, 2);
  Result r = run("info --frobnicate");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("unknown option '--frobnicate'"), std::string::npos);
  r = run("serve --model x.gguf --prot 80");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("unknown option '--prot'"), std::string::npos) << r.output;
  r = run("config --print --port");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("option --port needs a value"), std::string::npos) << r.output;
}

// A plugin's keys exist when the plugin is found: validated, printed, written by generate-config, and its
// shorthands (--port) are options of every command.
TEST(Cli, PluginKeysAndShorthandsComeFromThePluginsFound) {
  Result without = run("config --print --set decoder.delay_ms=5");
  EXPECT_EQ(without.status, 1) << without.output;
  EXPECT_NE(without.output.find("unknown key 'decoder.delay_ms'"), std::string::npos) << without.output;
  EXPECT_NE(without.output.find("keys beyond the core's come from the plugins found in"), std::string::npos);
  const std::string decoders = " --set plugins.dir=" BITRUN_TEST_DECODER_DIR;
  Result with = run("config --print" + decoders + " --set decoder.delay_ms=5");
  EXPECT_EQ(with.status, 0) << with.output;
  EXPECT_NE(with.output.find("  delay_ms: 5   # from command line"), std::string::npos) << with.output;
  Result bad = run("config --print" + decoders + " --set decoder.delay_ms=-5");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.output.find("key 'decoder.delay_ms': value -5 is out of range [0, 60000]"), std::string::npos)
      << bad.output;
  Result generated = run("generate-config" + decoders);
  EXPECT_NE(generated.output.find("# test decoder slow: milliseconds each step sleeps [plugin 'slow']\n  delay_ms: 20"),
            std::string::npos) << generated.output;
  Result info = run("info" + decoders);
  EXPECT_NE(info.output.find("  slow: decoder.delay_ms\n"), std::string::npos) << info.output;
  EXPECT_NE(info.output.find("  http: server.host, server.port,"), std::string::npos) << info.output;
  // The config file is read once for both passes, so a pipe works.
  Result piped = run("config --print -c /dev/stdin" + decoders, "server: {port: 9124}");
  EXPECT_EQ(piped.status, 0) << piped.output;
  EXPECT_NE(piped.output.find("  port: 9124   # from /dev/stdin"), std::string::npos) << piped.output;
  Result port = run("config --print --port 9123");
  EXPECT_NE(port.output.find("  port: 9123   # from command line"), std::string::npos) << port.output;
  Result help = run("serve --help");
  EXPECT_NE(help.output.find("--port VALUE"), std::string::npos) << help.output;
  EXPECT_NE(help.output.find("same as --set server.port=VALUE (plugin 'http')"), std::string::npos) << help.output;
}

}  // namespace

namespace {

const std::string kShared = std::string(BITRUN_SOURCE_DIR) + "/../shared/";

// The model commands end to end: generate streams the golden stories260K text (greedy, both backends agree),
// perplexity prints the protocol's numbers, convert/synth write loadable files, and bad input exits 1 naming it.
TEST(Cli, ModelCommandsWorkAndRejectBadInput) {
  if (!std::filesystem::exists(kShared + "models/stories260K.gguf")) GTEST_SKIP() << kShared << " not found";
  const std::string greedy = " --set sampling.temperature=0";
  Result g = run("generate -m " + kShared + "models/stories260K.gguf -n 12 --ids --log-level warn" + greedy);
  ASSERT_EQ(g.status, 0) << g.output;
  EXPECT_NE(g.output.find("Once upon a time, there was a little girl"), std::string::npos) << g.output;
  EXPECT_NE(g.output.find("ids: 403 407 261 378 432 383 286 261 376 298"), std::string::npos) << g.output;
  Result ref = run("generate -m " + kShared + "models/stories260K.gguf -n 12 --ids --backend reference --log-level warn" +
                   greedy);
  EXPECT_EQ(ref.output.substr(0, ref.output.find("prompt")), g.output.substr(0, g.output.find("prompt")));
  // A stop string ends generation before it, across token boundaries, and is not shown.
  Result stopped = run("generate -m " + kShared + "models/stories260K.gguf -n 60 --log-level warn" + greedy +
                       " --set 'generation.stop=[\"named\"]'");
  ASSERT_EQ(stopped.status, 0) << stopped.output;
  EXPECT_EQ(stopped.output.substr(0, stopped.output.find('\n')), "Once upon a time, there was a little girl ");
  // Sampling from the config: a fixed seed reproduces its text; another seed (almost surely) does not.
  auto sampled = [&](int seed) {
    Result r = run("generate -m " + kShared + "models/stories260K.gguf -n 40 --log-level warn --set sampling.seed=" +
                   std::to_string(seed) + " --set sampling.temperature=1.0");
    EXPECT_EQ(r.status, 0) << r.output;
    return r.output.substr(0, r.output.find("prompt"));
  };
  EXPECT_EQ(sampled(7), sampled(7));
  EXPECT_NE(sampled(7), sampled(8));

  // chat: scripted input on stdin; a turn, /reset, another turn, /exit.
  const std::string script = (std::filesystem::temp_directory_path() / "bitrun-chat-input.txt").string();
  std::ofstream(script) << "Tell me a story\n/reset\nHello\n/exit\n";
  Result chat = run("chat -m " + kShared + "models/stories260K.gguf --log-level warn --set generation.max_tokens=16" +
                    greedy + " < " + script);
  ASSERT_EQ(chat.status, 0) << chat.output;
  EXPECT_NE(chat.output.find("(plain template)"), std::string::npos) << chat.output;
  EXPECT_NE(chat.output.find("(conversation cleared)"), std::string::npos) << chat.output;
  EXPECT_GE(std::count(chat.output.begin(), chat.output.end(), '>'), 4) << chat.output;
  // A turn that no longer fits the context is refused with the sizes, and the chat goes on.
  std::ofstream(script) << std::string(300, 'a') << "\nHello\n/exit\n";
  Result full = run("chat -m " + kShared + "models/stories260K.gguf --log-level warn --set context_size=32" + greedy +
                    " < " + script);
  ASSERT_EQ(full.status, 0) << full.output;
  EXPECT_NE(full.output.find("but the context holds 32"), std::string::npos) << full.output;
  EXPECT_NE(full.output.find(": /reset to start over)"), std::string::npos) << full.output;
  std::filesystem::remove(script);

  Result p = run("perplexity " + kShared + "models/stories260K.gguf " + kShared + "text/tinystories-valid.txt --lines 5");
  ASSERT_EQ(p.status, 0) << p.output;
  EXPECT_NE(p.output.find("lines 5, predicted tokens"), std::string::npos) << p.output;

  const std::string out = (std::filesystem::temp_directory_path() / "bitrun-cli-tiny.gguf").string();
  ASSERT_EQ(run("synth " + out + " --preset bitnet-tiny --quiet").status, 0);
  const std::string converted = out + ".tq2.gguf";
  Result c = run("convert " + out + " " + converted + " --type tq2_0 --quiet");
  ASSERT_EQ(c.status, 0) << c.output;
  EXPECT_EQ(run("generate -m " + converted + " -n 3 --log-level warn").status, 0);

  Result missing = run("generate -m /nonexistent/model.gguf");
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.output.find("/nonexistent/model.gguf: cannot open model file"), std::string::npos);
  Result bad_type = run("convert " + out + " " + converted + " --type q4_0");
  EXPECT_EQ(bad_type.status, 1);
  EXPECT_NE(bad_type.output.find("unknown type 'q4_0'"), std::string::npos);
  Result float_to_ternary = run("convert " + kShared + "models/stories260K.gguf " + converted + " --type i2_s");
  EXPECT_EQ(float_to_ternary.status, 1);
  EXPECT_NE(float_to_ternary.output.find("float projection weights"), std::string::npos) << float_to_ternary.output;
  std::ofstream(out, std::ios::trunc) << "not a model";
  Result corrupt = run("generate -m " + out);
  EXPECT_EQ(corrupt.status, 1);
  EXPECT_NE(corrupt.output.find("too small to be a GGUF file"), std::string::npos) << corrupt.output;
  std::filesystem::remove(out);
  std::filesystem::remove(converted);
}

// The ids `generate --ids` printed.
std::vector<int> printed_ids(const std::string& output) {
  std::vector<int> ids;
  const auto at = output.find("ids:");
  if (at == std::string::npos) return ids;
  std::istringstream in(output.substr(at + 4, output.find('\n', at) - at - 4));
  for (int id; in >> id;) ids.push_back(id);
  return ids;
}

// Block diffusion from the command line: on stories260K with a designated mask token (mechanics only: it is not
// a diffusion model), on a synthetic model that carries its own, and the errors when it cannot run.
TEST(Cli, ImportWritesAModelThatGeneratesAndNamesBadInput) {
  const std::string dir = std::string(BITRUN_SOURCE_DIR) + "/tests/data/default-model-hf";
  const std::string out = (std::filesystem::temp_directory_path() / "bitrun-cli-import.gguf").string();
  std::filesystem::remove(out);
  Result r = run("import " + dir + " " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("[  93/93]"), std::string::npos) << r.output;   // progress, one line per tensor
  EXPECT_NE(r.output.find("wrote " + out), std::string::npos) << r.output;
  const std::string greedy = " -n 16 --log-level warn --set sampling.temperature=0 -p 'Once upon a time'";
  Result imported = run("generate -m " + out + greedy);
  Result committed = run("generate -m " + std::string(BITRUN_SOURCE_DIR) + "/models/default.gguf" + greedy);
  ASSERT_EQ(imported.status, 0) << imported.output;
  EXPECT_EQ(imported.output.substr(0, imported.output.find("prompt")),
            committed.output.substr(0, committed.output.find("prompt")));   // the text, not the timings
  Result missing = run("import /nonexistent-folder " + out + ".2");
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.output.find("/nonexistent-folder: not a directory"), std::string::npos) << missing.output;
  Result bad_type = run("import " + dir + " " + out + ".3 --type q4_0");
  EXPECT_NE(bad_type.status, 0);
  EXPECT_NE(bad_type.output.find("--type: unknown type 'q4_0'"), std::string::npos) << bad_type.output;
  EXPECT_FALSE(std::filesystem::exists(out + ".2") || std::filesystem::exists(out + ".3"));
  std::filesystem::remove(out);
}

TEST(Cli, GenerateRunsTheDiffusionDecoderAndReportsTokensPerForward) {
  if (!std::filesystem::exists(kShared + "models/stories260K.gguf")) GTEST_SKIP() << kShared << " not found";
  const std::string stories = "generate -m " + kShared + "models/stories260K.gguf --ids --log-level warn" +
                              " --set sampling.temperature=0 --set decoder.type=diffusion";
  for (const char* mode : {"greedy", "adaptive"}) {
    Result r = run(stories + " -n 20 --set decoder.mask_token=0 --set decoder.mode=" + mode);
    ASSERT_EQ(r.status, 0) << r.output;
    const std::vector<int> ids = printed_ids(r.output);
    EXPECT_FALSE(ids.empty()) << r.output;
    EXPECT_LE(ids.size(), 20u) << r.output;
    EXPECT_EQ(std::count(ids.begin(), ids.end(), 0), 0) << "the mask token was emitted: " << r.output;
    EXPECT_NE(r.output.find("decoder diffusion: "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(" tokens per forward"), std::string::npos) << r.output;
  }
  Result no_mask = run(stories + " -n 5");
  EXPECT_EQ(no_mask.status, 1);
  EXPECT_NE(no_mask.output.find("the model has no mask token"), std::string::npos) << no_mask.output;
  Result bad_mode = run(stories + " -n 5 --set decoder.mask_token=0 --set decoder.mode=fast");
  EXPECT_EQ(bad_mode.status, 1);
  EXPECT_NE(bad_mode.output.find("decoder.mode"), std::string::npos) << bad_mode.output;

  // A synthetic model states its mask token and contract: greedy fills a sub-block of 8 per forward.
  const std::string tiny = (std::filesystem::temp_directory_path() / "bitrun-cli-dlm-tiny.gguf").string();
  ASSERT_EQ(run("synth " + tiny + " --preset bitnet-tiny --quiet").status, 0);
  Result g = run("generate -m " + tiny + " -n 40 --ids --log-level warn --set sampling.temperature=0"
                 " --set decoder.type=diffusion --set decoder.mode=greedy");
  ASSERT_EQ(g.status, 0) << g.output;
  EXPECT_EQ(printed_ids(g.output).size(), 40u) << g.output;   // its end token is never the favourite here
  EXPECT_NE(g.output.find("decoder diffusion: 7 forwards"), std::string::npos) << g.output;
  std::filesystem::remove(tiny);
}

// kv_cache.type reaches the model the CLI loads: the load log names the type and its bytes per position
// (stories260K: 5 layers, 4 KV heads of 8), and greedy generation with int8 K/V still tells the golden story.
TEST(Cli, GenerateWithAnInt8KvCache) {
  if (!std::filesystem::exists(kShared + "models/stories260K.gguf")) GTEST_SKIP() << kShared << " not found";
  const std::string stories = "generate -m " + kShared + "models/stories260K.gguf -n 12 --set sampling.temperature=0";
  Result f16 = run(stories);
  ASSERT_EQ(f16.status, 0) << f16.output;
  EXPECT_NE(f16.output.find("KV cache f16 (640 bytes per position)"), std::string::npos) << f16.output;
  Result int8 = run(stories + " --set kv_cache.type=int8");
  ASSERT_EQ(int8.status, 0) << int8.output;
  EXPECT_NE(int8.output.find("KV cache int8 (480 bytes per position)"), std::string::npos) << int8.output;
  EXPECT_NE(int8.output.find("Once upon a time, there was a little girl"), std::string::npos) << int8.output;
  Result bad = run(stories + " --set kv_cache.type=q4");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.output.find("kv_cache.type"), std::string::npos) << bad.output;
}

// The decoder table has a row per thread count and decoder (AR first), the row-cost table every n, and with a
// prompt set the requests come from its lines; --judge scores each decoder's text and needs --prompts.
TEST(Cli, BenchComparesDecodersWithAr) {
  Result r = run("bench --preset bitnet-tiny --reps 1 --prompt-tokens 16 --gen-tokens 8 --diffusion-tokens 16 "
                 "--threads 1 --log-level warn");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* decoder : {"ar", "greedy", "iterative", "adaptive", "factor", "eb"}) {
    char row[64];
    std::snprintf(row, sizeof row, "\n%-8d %-10s", 1, decoder);
    EXPECT_NE(r.output.find(row), std::string::npos) << decoder << " missing:\n" << r.output;
  }
  for (const char* column : {"tok/fwd", "rows/fwd", "break-even", "n=16", "n=32"})
    EXPECT_NE(r.output.find(column), std::string::npos) << column << " missing:\n" << r.output;

  const std::string prompts = std::string(BITRUN_SOURCE_DIR) + "/tests/data/story-prompts.txt";
  const std::string json = (std::filesystem::temp_directory_path() / "bitrun-bench-decoders.json").string();
  Result set = run("bench --reps 1 --prompt-tokens 8 --gen-tokens 4 --diffusion-tokens 8 --threads 1 --log-level warn "
                   "--prompts " + prompts + " --json " + json);
  ASSERT_EQ(set.status, 0) << set.output;
  EXPECT_NE(set.output.find("24 prompts from"), std::string::npos) << set.output;
  std::ifstream in(json);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const bitrun::Json doc = bitrun::Json::parse(text);   // valid JSON, whatever the names and numbers
  ASSERT_NE(doc.find("decoder_prompt_count"), nullptr) << text;
  EXPECT_EQ(doc.find("decoder_prompt_count")->as_int(), 24);
  ASSERT_NE(doc.find("runs"), nullptr);
  ASSERT_FALSE(doc.find("runs")->as_array().empty());
  EXPECT_EQ(doc.find("runs")->as_array()[0].find("row_cost")->as_array().size(), 6u);
  ASSERT_NE(doc.find("decoders"), nullptr);
  bool adaptive = false;
  for (const bitrun::Json& d : doc.find("decoders")->as_array()) {
    adaptive |= d.find("decoder")->as_string() == "adaptive";
    EXPECT_NE(d.find("break_even_tokens_per_forward"), nullptr) << text;
  }
  EXPECT_TRUE(adaptive) << text;
  std::filesystem::remove(json);

  Result lone_judge = run("bench --judge x.gguf --reps 1 --diffusion-tokens 8");
  EXPECT_EQ(lone_judge.status, 1) << lone_judge.output;
  EXPECT_NE(lone_judge.output.find("--judge needs --prompts"), std::string::npos) << lone_judge.output;

  if (!std::filesystem::exists(kShared + "models/stories260K.gguf")) GTEST_SKIP() << kShared << " not found";
  Result judged = run("bench --reps 1 --prompt-tokens 8 --gen-tokens 4 --diffusion-tokens 8 --threads 1 --log-level warn "
                      "--prompts " + prompts + " --judge " + kShared + "models/stories260K.gguf");
  ASSERT_EQ(judged.status, 0) << judged.output;
  EXPECT_NE(judged.output.find("judge ppl"), std::string::npos) << judged.output;
}

// serve: its options reach the config, bad ones exit 1 naming the key, and an address in use is reported.
// (Serving itself is tested by test_server and by the openai-node end-to-end test, which also checks SIGTERM.)
TEST(Cli, ServeRejectsBadSettingsAndBusyPorts) {
  Result help = run("serve --help");
  EXPECT_EQ(help.status, 0) << help.output;
  EXPECT_NE(help.output.find("/v1/chat/completions"), std::string::npos) << help.output;
  Result bad_port = run("serve --model x.gguf --port seventy");
  EXPECT_EQ(bad_port.status, 1) << bad_port.output;
  EXPECT_NE(bad_port.output.find("server.port"), std::string::npos) << bad_port.output;
  Result big_port = run("serve --model x.gguf --set server.port=70000");
  EXPECT_EQ(big_port.status, 1) << big_port.output;
  EXPECT_NE(big_port.output.find("server.port"), std::string::npos) << big_port.output;
  // frontend.type names the frontend plugin; one that is not there is an error naming it, before any model loads.
  Result no_frontend = run("serve --model x.gguf --set frontend.type=grpc");
  EXPECT_EQ(no_frontend.status, 1) << no_frontend.output;
  EXPECT_NE(no_frontend.output.find("frontend 'grpc' not found among the plugins"), std::string::npos)
      << no_frontend.output;

  if (!std::filesystem::exists(kShared + "models/stories260K.gguf")) GTEST_SKIP() << kShared << " not found";
  // Hold a port, then ask serve for it.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string port = std::to_string(ntohs(addr.sin_port));
  Result busy = run("serve -m " + kShared + "models/stories260K.gguf --host 127.0.0.1 --port " + port);
  close(fd);
  EXPECT_EQ(busy.status, 1) << busy.output;
  EXPECT_NE(busy.output.find("cannot listen on 127.0.0.1:" + port), std::string::npos) << busy.output;
}

// While the server cannot accept (stopped here with SIGSTOP; in life, an accept loop that falls behind in a burst),
// the kernel completes connections up to the listen backlog and drops the SYNs beyond it, which their clients
// resend only after a second. cpp-httplib listens with a backlog of 5; bitrun raises it, so 40 connections made
// at once all complete.
TEST(Cli, ServeKeepsABurstOfConnectionsWaitingInsteadOfDroppingThem) {
  const std::string log = testing::TempDir() + "bitrun-backlog-" + std::to_string(getpid()) + ".log";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(out, 1);
    dup2(out, 2);
    execl(BITRUN_EXE, BITRUN_EXE, "serve", "--port", "0", "--set", "log.level=info", static_cast<char*>(nullptr));
    _exit(127);
  }
  int port = -1;
  for (int i = 0; i < 300 && port < 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::ifstream in(log);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto at = text.find("listening on http://127.0.0.1:");
    if (at != std::string::npos) port = std::atoi(text.c_str() + at + 30);
  }
  ASSERT_GT(port, 0) << "bitrun serve did not report its port";
  ASSERT_EQ(kill(pid, SIGSTOP), 0);
  constexpr int kClients = 40;
  std::vector<int> fds;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  for (int i = 0; i < kClients; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);   // EINPROGRESS, or at once on loopback
    fds.push_back(fd);
  }
  int connected = 0;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  for (int fd : fds) {
    pollfd p{fd, POLLOUT, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(give_up - std::chrono::steady_clock::now());
    int error = -1;
    socklen_t len = sizeof error;
    if (poll(&p, 1, static_cast<int>(std::max<std::int64_t>(0, left.count()))) == 1 &&
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) == 0 && error == 0)
      ++connected;
  }
  for (int fd : fds) close(fd);
  kill(pid, SIGCONT);
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  std::remove(log.c_str());
  EXPECT_EQ(connected, kClients) << "connections beyond the listen backlog were dropped";
}

}  // namespace
