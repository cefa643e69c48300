// CPU detection: consistent with itself and with what the Linux kernel reports for this machine.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

#include "bitrun/base/cpu_features.hpp"

namespace bitrun {
namespace {

std::set<std::string> proc_cpuinfo_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    std::set<std::string> flags;
    for (std::string w; words >> w;) flags.insert(w);
    return flags;
  }
  return {};
}

// Linux spells SSE3 "pni"; every other name is the same.
std::string linux_name(CpuFeature f) { return f == CpuFeature::SSE3 ? "pni" : std::string(cpu_feature_name(f)); }

TEST(CpuFeatures, NamesRoundTrip) {
  for (std::uint32_t i = 0; i < static_cast<std::uint32_t>(CpuFeature::Count); ++i) {
    auto f = static_cast<CpuFeature>(i);
    ASSERT_EQ(cpu_feature_from_name(cpu_feature_name(f)), f);
  }
  EXPECT_FALSE(cpu_feature_from_name("avx1024").has_value());
  EXPECT_EQ(cpu_feature_list(feature_bit(CpuFeature::AVX2) | feature_bit(CpuFeature::FMA)), "fma avx2");
}

TEST(CpuFeatures, DetectionIsInternallyConsistent) {
  const CpuInfo& cpu = detect_cpu();
  EXPECT_FALSE(cpu.vendor.empty());
  EXPECT_GE(cpu.logical_cpus, 1u);
  EXPECT_TRUE(cpu.has(CpuFeature::SSE3)) << "every x86-64 CPU that can run this build has SSE3";
  if (cpu.os_saves_zmm) {
    EXPECT_TRUE(cpu.os_saves_ymm);
  }
  // Features whose registers the OS does not save must not be reported usable.
  if (!cpu.os_saves_ymm) {
    EXPECT_FALSE(cpu.has(CpuFeature::AVX2));
  }
  if (!cpu.os_saves_zmm) {
    EXPECT_FALSE(cpu.has(CpuFeature::AVX512F));
  }
  if (cpu.has(CpuFeature::AVX512BW)) {
    EXPECT_TRUE(cpu.has(CpuFeature::AVX512F));
  }
  EXPECT_EQ(&detect_cpu(), &cpu) << "detection is cached";
}

TEST(CpuFeatures, AgreesWithTheKernel) {
  auto flags = proc_cpuinfo_flags();
  if (flags.empty()) GTEST_SKIP() << "/proc/cpuinfo has no flags line on this system";
  const CpuInfo& cpu = detect_cpu();
  for (std::uint32_t i = 0; i < static_cast<std::uint32_t>(CpuFeature::Count); ++i) {
    auto f = static_cast<CpuFeature>(i);
    // The kernel lists a flag only when it supports it, and it enables the register state of what it lists.
    EXPECT_EQ(cpu.has(f), flags.count(linux_name(f)) == 1) << cpu_feature_name(f);
  }
}

TEST(CpuFeatures, MaskingRemovesFeatures) {
  CpuInfo masked = detect_cpu().without(feature_bit(CpuFeature::AVX2) | feature_bit(CpuFeature::AVX512F));
  EXPECT_FALSE(masked.has(CpuFeature::AVX2));
  EXPECT_FALSE(masked.has(CpuFeature::AVX512F));
  EXPECT_EQ(masked.has(CpuFeature::SSE3), detect_cpu().has(CpuFeature::SSE3));
}

}  // namespace
}  // namespace bitrun
