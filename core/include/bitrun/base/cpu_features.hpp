// What the CPU (and the operating system) lets us execute. Detected once with CPUID + XGETBV; backends declare
// what they need as a CpuFeatureMask so the host can choose without running any ISA-specific code.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bitrun {

enum class CpuFeature : std::uint32_t {
  SSE3, SSSE3, SSE41, SSE42, POPCNT, FMA, F16C, AVX, AVX2, BMI2,
  AVX_VNNI, AVX512F, AVX512CD, AVX512DQ, AVX512BW, AVX512VL, AVX512_VNNI, AVX512_VBMI, AVX512_BF16,
  Count
};

using CpuFeatureMask = std::uint64_t;

constexpr CpuFeatureMask feature_bit(CpuFeature f) { return CpuFeatureMask{1} << static_cast<std::uint32_t>(f); }

// Lower-case names as Linux /proc/cpuinfo spells them ("avx512bw", "avx512_vnni", "avx_vnni").
std::string_view cpu_feature_name(CpuFeature f);
std::optional<CpuFeature> cpu_feature_from_name(std::string_view name);
// "avx2 fma f16c" for a mask, in enum order.
std::string cpu_feature_list(CpuFeatureMask mask);

struct CpuInfo {
  std::string vendor;         // "GenuineIntel", "AuthenticAMD", ...
  std::string brand;          // "AMD EPYC 9R45 ..." when the CPU reports it
  CpuFeatureMask features = 0;  // usable features: CPUID bit set AND register state enabled by the OS
  bool os_saves_ymm = false;    // XCR0 has SSE+AVX state
  bool os_saves_zmm = false;    // XCR0 has opmask + ZMM state
  unsigned logical_cpus = 1;

  bool has(CpuFeature f) const { return (features & feature_bit(f)) != 0; }
  bool has_all(CpuFeatureMask m) const { return (features & m) == m; }
  // A copy with some features switched off, to simulate an older CPU (config `cpu.disable`, tests).
  CpuInfo without(CpuFeatureMask m) const;
};

// Detect the machine's CPU. Cached: the first call runs CPUID, later calls return the same object.
const CpuInfo& detect_cpu();

}  // namespace bitrun
