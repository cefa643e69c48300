#include "diffusion_settings.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <string_view>

#include "bitrun/config.hpp"
#include "bitrun/error.hpp"

namespace bitrun::diffusion {
namespace {

Mode parse_mode(const std::string& text, const std::string& where) {
  if (text == "greedy") return Mode::Greedy;
  if (text == "iterative") return Mode::Iterative;
  if (text == "adaptive") return Mode::Adaptive;
  if (text == "factor") return Mode::Factor;
  if (text == "eb") return Mode::EntropyBudget;
  throw ConfigError(where + ": unknown mode '" + text + "' (greedy, iterative, adaptive, factor or eb)");
}

DiffusionAttention parse_attention(const std::string& text) {
  if (text == "block-causal") return DiffusionAttention::BlockCausal;
  if (text == "causal") return DiffusionAttention::Causal;
  if (text == "auto") return DiffusionAttention::Unspecified;
  throw ConfigError("decoder.attention: unknown contract '" + text + "' (auto, block-causal or causal)");
}

[[noreturn]] void bad_value(const std::string& key, const std::string& text, const std::string& expected) {
  throw ConfigError("decoder option '" + key + "': '" + text + "' is not " + expected);
}

double parse_number(const std::string& key, const std::string& text, double lo, double hi) {
  double v = 0.0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || ptr != end || !std::isfinite(v) || v < lo || v > hi) {
    char expected[64];
    std::snprintf(expected, sizeof expected, "a number in [%g, %g]", lo, hi);
    bad_value(key, text, expected);
  }
  return v;
}

std::int32_t parse_count(const std::string& key, const std::string& text, std::int32_t lo, std::int32_t hi) {
  std::int32_t v = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || ptr != end || v < lo || v > hi)
    bad_value(key, text, "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}

bool parse_flag(const std::string& key, const std::string& text) {
  if (text == "true" || text == "1") return true;
  if (text == "false" || text == "0") return false;
  bad_value(key, text, "true or false");
}

}  // namespace

const char* mode_name(Mode mode) {
  switch (mode) {
    case Mode::Greedy: return "greedy";
    case Mode::Iterative: return "iterative";
    case Mode::Adaptive: return "adaptive";
    case Mode::Factor: return "factor";
    case Mode::EntropyBudget: return "eb";
  }
  return "?";
}

Settings settings_from_config(const Config& config) {
  Settings s;
  s.mode = parse_mode(config.get_string("decoder.mode"), "decoder.mode");
  s.threshold = config.get_float("decoder.threshold");
  s.block_size = static_cast<std::int32_t>(config.get_int("decoder.block_size"));
  s.sub_block_size = static_cast<std::int32_t>(config.get_int("decoder.sub_block_size"));
  s.max_iterations_per_block = static_cast<std::int32_t>(config.get_int("decoder.max_iterations_per_block"));
  s.factor = config.get_float("decoder.factor");
  s.gamma = config.get_float("decoder.gamma");
  s.sub_block_cache = config.get_bool("decoder.sub_block_cache");
  s.mask_token = static_cast<std::int32_t>(config.get_int("decoder.mask_token"));
  s.attention = parse_attention(config.get_string("decoder.attention"));
  return s;
}

Settings with_request_options(Settings s, const std::map<std::string, std::string>& options) {
  for (const auto& [key, text] : options) {
    if (key == "mode") s.mode = parse_mode(text, "decoder option 'mode'");
    else if (key == "threshold") s.threshold = parse_number(key, text, 0.0, 1.0);
    else if (key == "block_size") s.block_size = parse_count(key, text, 0, 4096);
    else if (key == "sub_block_size") s.sub_block_size = parse_count(key, text, 1, 4096);
    else if (key == "max_iterations_per_block") s.max_iterations_per_block = parse_count(key, text, 1, 4096);
    else if (key == "factor") s.factor = parse_number(key, text, 0.0, 100.0);
    else if (key == "gamma") s.gamma = parse_number(key, text, 0.0, 100.0);
    else if (key == "sub_block_cache") s.sub_block_cache = parse_flag(key, text);
    else if (key == "mask_token" || key == "attention")
      // They describe how the model was trained, not how a request wants to be decoded.
      throw ConfigError("decoder option '" + key + "' describes the model: set decoder." + key +
                        " in the configuration, not per request");
    else
      throw ConfigError("decoder 'diffusion' has no option '" + key + "' (mode, threshold, block_size, "
                        "sub_block_size, max_iterations_per_block, factor, gamma, sub_block_cache)");
  }
  return s;
}

}  // namespace bitrun::diffusion
