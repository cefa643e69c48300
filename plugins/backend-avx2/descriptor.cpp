// Descriptor and factory of the AVX2 backend. Compiled WITHOUT -mavx2: the host calls this code on any CPU.
#include "bitrun/plugin/backend.hpp"
#include "bitrun/plugin/plugin_abi.hpp"

namespace bitrun::avx2 {

std::unique_ptr<Backend> make_backend(const BackendOptions& options);   // kernels_avx2.cpp

namespace {

constexpr CpuFeatureMask kRequired =
    feature_bit(CpuFeature::AVX2) | feature_bit(CpuFeature::FMA) | feature_bit(CpuFeature::F16C);

std::int32_t score(CpuFeatureMask available) { return score_if_runnable(available, kRequired, 200); }

}  // namespace

const PluginDescriptor& descriptor() {
  static const PluginDescriptor d{PluginKind::Backend, "avx2", "0.1.0",
                                  "ternary x int8 kernels for AVX2 (vpmaddubsw, 2-bit packed weights)", kRequired,
                                  &score, nullptr, 0};
  return d;
}

// The host calls this only after score() said the CPU can run it.
std::unique_ptr<Backend> create_backend(const BackendOptions& options) { return make_backend(options); }

}  // namespace bitrun::avx2

BITRUN_PLUGIN_ABI_EXPORT(bitrun::avx2::descriptor)
BOOST_DLL_ALIAS(bitrun::avx2::create_backend, bitrun_create_backend)
