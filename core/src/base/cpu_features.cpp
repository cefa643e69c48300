#include "bitrun/base/cpu_features.hpp"

#include <cpuid.h>

#include <array>
#include <cstring>
#include <thread>

namespace bitrun {
namespace {

constexpr std::array<std::string_view, static_cast<std::size_t>(CpuFeature::Count)> kNames = {
    "sse3",    "ssse3",    "sse4_1",   "sse4_2",   "popcnt",   "fma",         "f16c",
    "avx",     "avx2",     "bmi2",     "avx_vnni", "avx512f",  "avx512cd",    "avx512dq",
    "avx512bw", "avx512vl", "avx512_vnni", "avx512vbmi", "avx512_bf16"};

struct CpuidRegs {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
};

CpuidRegs cpuid(unsigned leaf, unsigned subleaf) {
  CpuidRegs r;
  if (!__get_cpuid_count(leaf, subleaf, &r.eax, &r.ebx, &r.ecx, &r.edx)) return CpuidRegs{};
  return r;
}

// XCR0 tells which register state the OS saves on context switch; without it the registers are unusable even
// when CPUID advertises the instructions. Only valid when CPUID.1:ECX.OSXSAVE is set.
std::uint64_t read_xcr0() {
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (std::uint64_t{hi} << 32) | lo;
}

bool bit(unsigned reg, int n) { return (reg >> n) & 1u; }

CpuInfo detect() {
  CpuInfo info;
  CpuidRegs leaf0 = cpuid(0, 0);
  char vendor[13] = {};
  std::memcpy(vendor + 0, &leaf0.ebx, 4);
  std::memcpy(vendor + 4, &leaf0.edx, 4);
  std::memcpy(vendor + 8, &leaf0.ecx, 4);
  info.vendor = vendor;

  if (cpuid(0x80000000u, 0).eax >= 0x80000004u) {
    char brand[49] = {};
    for (unsigned i = 0; i < 3; ++i) {
      CpuidRegs r = cpuid(0x80000002u + i, 0);
      std::memcpy(brand + 16 * i + 0, &r.eax, 4);
      std::memcpy(brand + 16 * i + 4, &r.ebx, 4);
      std::memcpy(brand + 16 * i + 8, &r.ecx, 4);
      std::memcpy(brand + 16 * i + 12, &r.edx, 4);
    }
    info.brand = brand;
    auto first = info.brand.find_first_not_of(' ');
    info.brand = first == std::string::npos ? "" : info.brand.substr(first);
    while (!info.brand.empty() && info.brand.back() == ' ') info.brand.pop_back();
  }

  CpuidRegs l1 = cpuid(1, 0);
  CpuidRegs l7 = leaf0.eax >= 7 ? cpuid(7, 0) : CpuidRegs{};
  CpuidRegs l7s1 = leaf0.eax >= 7 ? cpuid(7, 1) : CpuidRegs{};

  if (bit(l1.ecx, 27)) {  // OSXSAVE
    std::uint64_t xcr0 = read_xcr0();
    info.os_saves_ymm = (xcr0 & 0x6) == 0x6;          // SSE + AVX state
    info.os_saves_zmm = (xcr0 & 0xE6) == 0xE6;        // + opmask, ZMM_Hi256, Hi16_ZMM
  }

  CpuFeatureMask m = 0;
  auto set = [&](CpuFeature f, bool on) { if (on) m |= feature_bit(f); };
  set(CpuFeature::SSE3, bit(l1.ecx, 0));
  set(CpuFeature::SSSE3, bit(l1.ecx, 9));
  set(CpuFeature::SSE41, bit(l1.ecx, 19));
  set(CpuFeature::SSE42, bit(l1.ecx, 20));
  set(CpuFeature::POPCNT, bit(l1.ecx, 23));
  set(CpuFeature::BMI2, bit(l7.ebx, 8));
  if (info.os_saves_ymm) {
    set(CpuFeature::AVX, bit(l1.ecx, 28));
    set(CpuFeature::FMA, bit(l1.ecx, 12));
    set(CpuFeature::F16C, bit(l1.ecx, 29));
    set(CpuFeature::AVX2, bit(l7.ebx, 5));
    set(CpuFeature::AVX_VNNI, bit(l7s1.eax, 4));
  }
  if (info.os_saves_zmm) {
    set(CpuFeature::AVX512F, bit(l7.ebx, 16));
    set(CpuFeature::AVX512DQ, bit(l7.ebx, 17));
    set(CpuFeature::AVX512CD, bit(l7.ebx, 28));
    set(CpuFeature::AVX512BW, bit(l7.ebx, 30));
    set(CpuFeature::AVX512VL, bit(l7.ebx, 31));
    set(CpuFeature::AVX512_VBMI, bit(l7.ecx, 1));
    set(CpuFeature::AVX512_VNNI, bit(l7.ecx, 11));
    set(CpuFeature::AVX512_BF16, bit(l7s1.eax, 5));
  }
  info.features = m;
  info.logical_cpus = std::max(1u, std::thread::hardware_concurrency());
  return info;
}

}  // namespace

std::string_view cpu_feature_name(CpuFeature f) { return kNames.at(static_cast<std::size_t>(f)); }

std::optional<CpuFeature> cpu_feature_from_name(std::string_view name) {
  for (std::size_t i = 0; i < kNames.size(); ++i)
    if (kNames[i] == name) return static_cast<CpuFeature>(i);
  return std::nullopt;
}

std::string cpu_feature_list(CpuFeatureMask mask) {
  std::string out;
  for (std::size_t i = 0; i < kNames.size(); ++i) {
    if (!(mask & feature_bit(static_cast<CpuFeature>(i)))) continue;
    if (!out.empty()) out += ' ';
    out += kNames[i];
  }
  return out;
}

CpuInfo CpuInfo::without(CpuFeatureMask m) const {
  CpuInfo copy = *this;
  copy.features &= ~m;
  return copy;
}

const CpuInfo& detect_cpu() {
  static const CpuInfo info = detect();
  return info;
}

}  // namespace bitrun
