#include <algorithm>

#include "bitrun/model/architecture.hpp"

namespace bitrun {
namespace {

const std::vector<ArchitectureSpec>& registry() {
  static const std::vector<ArchitectureSpec> specs = {
      // llama: float weights, SiLU-gated FFN, adjacent-pair RoPE (ggml "NORM" mode).
      {"llama", FfnActivation::Silu, false, false, false},
      // llama.cpp mainline BitNet (1bitLLM): SubLN, SiLU, NEOX RoPE.
      {"bitnet", FfnActivation::Silu, true, true, true},
      // bitnet.cpp's BitNet b1.58 2B-4T family: SubLN, ReLU^2-gated FFN, NEOX RoPE.
      {"bitnet-b1.58", FfnActivation::ReluSquared, true, true, true},
      {"bitnet-25", FfnActivation::ReluSquared, true, true, true},
  };
  return specs;
}

}  // namespace

const ArchitectureSpec* find_architecture(std::string_view name) {
  const auto& specs = registry();
  auto it = std::find_if(specs.begin(), specs.end(), [&](const ArchitectureSpec& s) { return s.name == name; });
  return it == specs.end() ? nullptr : &*it;
}

std::vector<std::string> supported_architectures() {
  std::vector<std::string> names;
  for (const auto& s : registry()) names.push_back(s.name);
  return names;
}

const std::vector<std::string>& projection_names() {
  static const std::vector<std::string> names = {"attn_q", "attn_k", "attn_v", "attn_output",
                                                 "ffn_gate", "ffn_up", "ffn_down"};
  return names;
}

bool is_projection_weight(std::string_view name) {
  constexpr std::string_view prefix = "blk.", suffix = ".weight";
  if (!name.starts_with(prefix) || !name.ends_with(suffix)) return false;
  name = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  const auto dot = name.find('.');
  if (dot == 0 || dot == std::string_view::npos) return false;
  for (char c : name.substr(0, dot))
    if (c < '0' || c > '9') return false;
  const std::string_view proj = name.substr(dot + 1);
  const auto& names = projection_names();
  return std::find(names.begin(), names.end(), proj) != names.end();
}

}  // namespace bitrun
