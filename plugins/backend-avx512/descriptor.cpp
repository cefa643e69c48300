// Descriptor and factory of the AVX-512 backend. Compiled WITHOUT -mavx512*: the host calls this code on any CPU.
#include "bitrun/plugin/backend.hpp"
#include "bitrun/plugin/plugin_abi.hpp"

namespace bitrun::avx512 {

std::unique_ptr<Backend> make_backend(const BackendOptions& options);   // kernels_avx512.cpp

namespace {

constexpr CpuFeatureMask kRequired =
    feature_bit(CpuFeature::AVX512F) | feature_bit(CpuFeature::AVX512BW) | feature_bit(CpuFeature::AVX512VL) |
    feature_bit(CpuFeature::AVX512DQ) | feature_bit(CpuFeature::AVX512_VNNI) | feature_bit(CpuFeature::AVX2) |
    feature_bit(CpuFeature::FMA) | feature_bit(CpuFeature::F16C);

std::int32_t score(CpuFeatureMask available) { return score_if_runnable(available, kRequired, 300); }

}  // namespace

const PluginDescriptor& descriptor() {
  static const PluginDescriptor d{PluginKind::Backend, "avx512", "0.1.0",
                                  "ternary x int8 kernels for AVX-512 BW/VL + VNNI (vpdpbusd, 2-bit packed weights)", kRequired,
                                  &score, nullptr, 0};
  return d;
}

// The host calls this only after score() said the CPU can run it.
std::unique_ptr<Backend> create_backend(const BackendOptions& options) { return make_backend(options); }

}  // namespace bitrun::avx512

BITRUN_PLUGIN_ABI_EXPORT(bitrun::avx512::descriptor)
BOOST_DLL_ALIAS(bitrun::avx512::create_backend, bitrun_create_backend)
