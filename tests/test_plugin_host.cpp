// Plugin host: loads the project's real plugin .so files, refuses broken ones with a clear error naming the file,
// honours a forced backend and refuses one the CPU cannot run.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>

#include "bitrun/config/config.hpp"
#include "bitrun/base/error.hpp"
#include "test_support.hpp"
#include "bitrun/plugin/plugin_host.hpp"

namespace bitrun {
namespace {

constexpr CpuFeatureMask kAvx512Needs = feature_bit(CpuFeature::AVX512F) | feature_bit(CpuFeature::AVX512BW) |
                                        feature_bit(CpuFeature::AVX512VL) | feature_bit(CpuFeature::AVX512_VNNI);
constexpr CpuFeatureMask kAvx2Needs =
    feature_bit(CpuFeature::AVX2) | feature_bit(CpuFeature::FMA) | feature_bit(CpuFeature::F16C);

const PluginRecord* record_for_file(const PluginHost& host, const std::string& filename) {
  for (const auto& r : host.plugins())
    if (r.file.filename() == filename) return &r;
  return nullptr;
}

std::string error_of(const std::function<void()>& f) { return test::error_message<Error>(f); }

TEST(PluginHost, LoadsTheProjectsBackendPlugins) {
  PluginHost host({BITRUN_TEST_PLUGIN_DIR}, detect_cpu());
  const PluginRecord* avx2 = host.find(PluginKind::Backend, "avx2");
  const PluginRecord* avx512 = host.find(PluginKind::Backend, "avx512");
  ASSERT_NE(avx2, nullptr);
  ASSERT_NE(avx512, nullptr);
  EXPECT_EQ(avx2->file.filename(), "bitrun-backend-avx2.so");
  EXPECT_FALSE(avx2->version.empty());
  EXPECT_EQ(avx2->required_features & kAvx2Needs, kAvx2Needs);
  EXPECT_EQ(avx512->required_features & kAvx512Needs, kAvx512Needs);
  EXPECT_EQ(avx2->score > 0, detect_cpu().has_all(avx2->required_features));
  EXPECT_EQ(avx512->score > 0, detect_cpu().has_all(avx512->required_features));
}

TEST(PluginHost, AutoPicksTheHighestScoringRunnableBackend) {
  PluginHost host({BITRUN_TEST_PLUGIN_DIR}, detect_cpu());
  BackendChoice choice = host.choose_backend("auto");
  std::string expected = "reference";
  if (detect_cpu().has_all(host.find(PluginKind::Backend, "avx512")->required_features)) {
    expected = "avx512";
  } else if (detect_cpu().has_all(kAvx2Needs)) {
    expected = "avx2";
  }
  EXPECT_EQ(choice.name, expected);
  auto backend = host.create_backend(choice, 1);
  EXPECT_EQ(backend->name(), choice.name);
}

TEST(PluginHost, ForcedBackendIsHonoured) {
  if (!detect_cpu().has_all(kAvx2Needs)) GTEST_SKIP() << "this CPU cannot run the avx2 backend";
  PluginHost host({BITRUN_TEST_PLUGIN_DIR}, detect_cpu());
  BackendChoice choice = host.choose_backend("avx2");
  EXPECT_EQ(choice.name, "avx2");
  EXPECT_EQ(host.create_backend(choice, 2)->name(), "avx2");
  EXPECT_EQ(host.create_backend(host.choose_backend("reference"), 1)->name(), "reference");
}

TEST(PluginHost, RefusesABackendTheCpuCannotRun) {
  // Simulate a CPU without AVX-512 VNNI: the avx512 plugin must be skipped, and forcing it must fail clearly,
  // all without executing any AVX-512 instruction (the score runs from a TU built without ISA flags).
  CpuInfo older = detect_cpu().without(feature_bit(CpuFeature::AVX512_VNNI));
  PluginHost host({BITRUN_TEST_PLUGIN_DIR}, older);
  EXPECT_EQ(host.find(PluginKind::Backend, "avx512")->score, 0);
  std::string msg = error_of([&] { host.choose_backend("avx512"); });
  EXPECT_NE(msg.find("backend 'avx512' cannot run on this CPU"), std::string::npos) << msg;
  EXPECT_NE(msg.find("avx512_vnni"), std::string::npos) << msg;
  if (older.has_all(kAvx2Needs)) {
    EXPECT_EQ(host.choose_backend("auto").name, "avx2");
  }

  CpuInfo no_simd = detect_cpu().without(feature_bit(CpuFeature::AVX2));
  PluginHost plain({BITRUN_TEST_PLUGIN_DIR}, no_simd);
  EXPECT_EQ(plain.choose_backend("auto").name, "reference");
  EXPECT_NE(error_of([&] { plain.choose_backend("avx2"); }).find("CPU lacks avx2"), std::string::npos);
}

TEST(PluginHost, UnknownBackendListsWhatExists) {
  PluginHost host({BITRUN_TEST_PLUGIN_DIR}, detect_cpu());
  std::string msg = error_of([&] { host.choose_backend("cuda"); });
  EXPECT_NE(msg.find("backend 'cuda' not found"), std::string::npos) << msg;
  EXPECT_NE(msg.find("avx2"), std::string::npos) << msg;
  EXPECT_NE(msg.find(BITRUN_TEST_PLUGIN_DIR), std::string::npos) << msg;
}

TEST(PluginHost, RejectsBrokenPluginsNamingTheFile) {
  // A file that is not a shared object at all, next to the built broken plugins.
  auto dir = std::filesystem::temp_directory_path() / "bitrun_bad_plugins";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  for (const auto& entry : std::filesystem::directory_iterator(BITRUN_BAD_PLUGIN_DIR))
    std::filesystem::copy_file(entry.path(), dir / entry.path().filename());
  std::ofstream(dir / "bitrun-garbage.so") << "this is not an ELF file";
  std::ofstream(dir / "README.txt") << "not a plugin name: ignored";

  PluginHost host({dir}, detect_cpu());
  const PluginRecord* bad_abi = record_for_file(host, "bitrun-test-bad-abi.so");
  ASSERT_NE(bad_abi, nullptr);
  EXPECT_NE(bad_abi->error.find("plugin ABI version " + std::to_string(kPluginAbiVersion - 1) + ", this bitrun needs " +
                                 std::to_string(kPluginAbiVersion)), std::string::npos) << bad_abi->error;
  EXPECT_FALSE(bad_abi->usable());

  const PluginRecord* no_desc = record_for_file(host, "bitrun-test-no-descriptor.so");
  ASSERT_NE(no_desc, nullptr);
  EXPECT_NE(no_desc->error.find("missing entry point 'bitrun_plugin_descriptor'"), std::string::npos);

  const PluginRecord* no_factory = record_for_file(host, "bitrun-test-no-factory.so");
  ASSERT_NE(no_factory, nullptr);
  EXPECT_NE(no_factory->error.find("missing entry point 'bitrun_create_decoder'"), std::string::npos);

  const PluginRecord* garbage = record_for_file(host, "bitrun-garbage.so");
  ASSERT_NE(garbage, nullptr);
  EXPECT_NE(garbage->error.find("cannot load"), std::string::npos) << garbage->error;

  // Keys that clash with taken ones leave the whole plugin out, none of its keys in.
  const PluginRecord* clash = record_for_file(host, "bitrun-test-clashing-settings.so");
  ASSERT_NE(clash, nullptr);
  EXPECT_NE(clash->error.find("config key 'decoder.type' (from plugin 'clash') is already defined by the core"),
            std::string::npos) << clash->error;
  EXPECT_EQ(host.config_schema()->find("clash.fine"), nullptr);
  EXPECT_EQ(host.find(PluginKind::Decoder, "clash"), nullptr);

  EXPECT_EQ(record_for_file(host, "README.txt"), nullptr);
  EXPECT_EQ(host.find(PluginKind::Backend, "bad-abi"), nullptr);
  EXPECT_EQ(host.find(PluginKind::Decoder, "no-factory"), nullptr);
  std::filesystem::remove_all(dir);
}

TEST(PluginHost, PluginKeysJoinTheSchemaAndReachTheFactory) {
  PluginHost host({BITRUN_TEST_PLUGIN_DIR, BITRUN_TEST_DECODER_DIR}, detect_cpu());
  const ConfigKey* delay = host.config_schema()->find("decoder.delay_ms");
  ASSERT_NE(delay, nullptr);
  EXPECT_EQ(delay->owner, "plugin 'slow'");
  EXPECT_EQ(std::get<std::int64_t>(delay->default_value), 20);
  const PluginRecord* slow = host.find(PluginKind::Decoder, "slow");
  ASSERT_NE(slow, nullptr);
  ASSERT_EQ(slow->settings.size(), 1u);
  // Without the plugin's directory the key does not exist.
  PluginHost without({BITRUN_TEST_PLUGIN_DIR}, detect_cpu());
  EXPECT_EQ(without.config_schema()->find("decoder.delay_ms"), nullptr);
  EXPECT_NE(without.config_schema()->find("decoder.threshold"), nullptr);

  // The factory reads the value the configuration holds: a step of the slow decoder sleeps that long.
  Config config(host.config_schema());
  config.set_from_cli("decoder.delay_ms=120");
  auto decoder = host.create_decoder("slow", config);
  DecodeRequest request;
  request.prompt = {1};
  request.max_tokens = 1;
  auto session = decoder->start(request);
  session->next_step();
  const auto start = std::chrono::steady_clock::now();
  session->consume(StepLogits{});
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(120));
}

TEST(PluginHost, EarlierDirectoriesShadowLaterOnes) {
  PluginHost once({BITRUN_TEST_PLUGIN_DIR}, detect_cpu());
  PluginHost host({BITRUN_TEST_PLUGIN_DIR, BITRUN_TEST_PLUGIN_DIR}, detect_cpu());
  std::size_t shadowed = 0;
  for (const auto& r : host.plugins()) shadowed += !r.shadowed_by.empty();
  EXPECT_EQ(shadowed, once.plugins().size());   // every plugin of the second copy
  EXPECT_NE(host.find(PluginKind::Backend, "avx2"), nullptr);
}

TEST(PluginHost, SearchPathOrder) {
  Config config;
  config.set_from_cli("plugins.dir=/opt/first");
  setenv(kEnvPluginPath, "/opt/second:/opt/third", 1);
  auto dirs = PluginHost::search_path(config);
  unsetenv(kEnvPluginPath);
  ASSERT_EQ(dirs.size(), 4u);
  EXPECT_EQ(dirs[0], "/opt/first");
  EXPECT_EQ(dirs[1], "/opt/second");
  EXPECT_EQ(dirs[2], "/opt/third");
  EXPECT_EQ(dirs[3].filename(), "plugins");   // <exe>/../lib/bitrun/plugins
  EXPECT_EQ(dirs[3].parent_path().filename(), "bitrun");
}

TEST(PluginHost, CpuDisableConfigMasksFeatures) {
  Config config;
  config.set_from_cli("cpu.disable=[avx512f]");
  EXPECT_FALSE(effective_cpu(config).has(CpuFeature::AVX512F));
  config.set_from_cli("cpu.disable=[avx9000]");
  EXPECT_NE(error_of([&] { effective_cpu(config); }).find("unknown CPU feature 'avx9000'"), std::string::npos);
}

}  // namespace
}  // namespace bitrun
