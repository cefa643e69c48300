// The bitrun executable end to end: info lists the plugins and picks a backend; a config file switches the
// backend without a rebuild; config errors exit non-zero with the key named.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "bitrun/cpu_features.hpp"

namespace {

struct Result {
  int status;
  std::string output;
};

Result run(const std::string& args) {
  std::string command = std::string(BITRUN_EXE) + " " + args + " 2>&1";
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

TEST(Cli, UnknownCommandsAndOptionsAreErrors) {
  EXPECT_EQ(run("frobnicate").status, 2);
  Result r = run("info --frobnicate");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("unknown option '--frobnicate'"), std::string::npos);
}

}  // namespace
