// `bitrun convert IN.gguf OUT.gguf --type TYPE [--embedding-type TYPE]`: re-encode a model's weights.
#include <cstdio>
#include <iostream>

#include "bitrun/model/convert.hpp"
#include "bitrun/base/error.hpp"
#include "bitrun/gguf/gguf.hpp"
#include "commands.hpp"
#include "options.hpp"

namespace bitrun::cli {
namespace {

GgmlType parse_type(const std::string& option, const std::string& name) {
  auto t = ggml_type_from_name(name);
  if (!t) throw ConfigError(option + ": unknown type '" + name + "' (f32, f16, bf16, q8_0, q6_k, tq1_0, tq2_0, i2_s)");
  return *t;
}

}  // namespace

int run_convert(const Args& args, char** envp) {
  CommandLine cl = parse_command_line(args, {"--quiet"}, envp, {{"--type", "-t"}, {"--embedding-type", ""}});
  if (cl.help || cl.positional.size() != 2 || cl.value("--type").empty()) {
    std::cout << "usage: bitrun convert IN.gguf OUT.gguf --type TYPE [--embedding-type TYPE] [--quiet]\n"
                 "Re-encodes the projection weights (blk.N.attn_q/k/v/output, ffn_gate/up/down) to TYPE and,\n"
                 "with --embedding-type, the token embedding and output matrix; everything else is copied.\n"
                 "Types: f32, f16, bf16, q8_0, q6_k (embedding), tq1_0, tq2_0, i2_s (ternary, BitNet models).\n"
                 "Float weights become ternary as at load: exact ternary values keep their scale, others are\n"
                 "quantized with per-tensor absmean.\n";
    return cl.help ? 0 : 2;
  }
  apply_logging(cl);
  ConvertOptions options;
  options.weight_type = parse_type("--type", cl.value("--type"));
  if (!cl.value("--embedding-type").empty())
    options.embedding_type = parse_type("--embedding-type", cl.value("--embedding-type"));
  const bool quiet = cl.has_flag("--quiet");
  options.progress = [quiet](std::size_t i, std::size_t n, const std::string& name, GgmlType from, GgmlType to) {
    if (quiet) return;
    std::fprintf(stderr, "[%3zu/%zu] %-32s %s -> %s\n", i + 1, n, name.c_str(), type_traits(from).name,
                 type_traits(to).name);
  };
  const GgufFile input = GgufFile::open(cl.positional[0]);
  convert_model(input, cl.positional[1], options);
  std::fprintf(stderr, "wrote %s\n", cl.positional[1].c_str());
  return 0;
}

}  // namespace bitrun::cli
