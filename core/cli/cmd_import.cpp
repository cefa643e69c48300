// `bitrun import DIR OUT.gguf [--type TYPE] [--mask-token TOKEN] [--arch NAME]`: a Hugging Face style checkpoint
// folder to a GGUF file.
#include <cstdio>
#include <iostream>

#include "bitrun/base/error.hpp"
#include "bitrun/import/hf_import.hpp"
#include "commands.hpp"
#include "options.hpp"

namespace bitrun::cli {

int run_import(const Args& args, char** envp) {
  CommandLine cl = parse_command_line(args, {"--quiet"}, envp, {{"--type", "-t"}, {"--mask-token", ""}, {"--arch", ""}});
  if (cl.help || cl.positional.size() != 2) {
    std::cout << "usage: bitrun import DIR OUT.gguf [--type TYPE] [--mask-token TOKEN] [--arch NAME] [--quiet]\n"
                 "Writes the checkpoint in DIR (config.json, model.safetensors or its shards with\n"
                 "model.safetensors.index.json, tokenizer.json, tokenizer_config.json) as one GGUF file.\n"
                 "Architectures: BitNetForCausalLM (bitnet-b1.58 with relu2, bitnet with silu), LlamaForCausalLM,\n"
                 "and variants with model_type bitnet or llama; block diffusion from mask_token_id and block_size\n"
                 "(or bd_size) in config.json.\n"
                 "  --type TYPE         projection weights: i2_s (default), tq1_0, tq2_0 (ternary models), f16, bf16,\n"
                 "                      f32. Float weights become ternary by per-tensor absmean (exact ternary values\n"
                 "                      keep their scale); the BitNet release's packed U8 weights are read as stored.\n"
                 "  --mask-token TOKEN  the block-diffusion mask token, by its text (e.g. '|<MASK>|')\n"
                 "  --arch NAME         GGUF architecture to write (bitnet-b1.58, bitnet, llama)\n"
                 "Progress goes to stderr (--quiet: none).\n";
    return cl.help ? 0 : 2;
  }
  apply_logging(cl);
  ImportOptions options;
  if (!cl.value("--type").empty()) {
    auto t = ggml_type_from_name(cl.value("--type"));
    if (!t) throw ConfigError("--type: unknown type '" + cl.value("--type") + "' (i2_s, tq1_0, tq2_0, f16, bf16, f32)");
    options.weight_type = *t;
  }
  if (!cl.value("--mask-token").empty()) options.mask_token = cl.value("--mask-token");
  if (!cl.value("--arch").empty()) options.arch = cl.value("--arch");
  const bool quiet = cl.has_flag("--quiet");
  options.progress = [quiet](const ImportProgress& p) {
    if (quiet) return;
    const double left = p.bytes_done > 0 ? p.seconds * static_cast<double>(p.bytes_total - p.bytes_done) /
                                               static_cast<double>(p.bytes_done)
                                         : 0.0;
    std::fprintf(stderr, "[%4zu/%zu] %7.1f / %.1f MB, %5.1f s, about %.0f s left  %s\n", p.tensors_done,
                 p.tensors_total, static_cast<double>(p.bytes_done) / 1e6, static_cast<double>(p.bytes_total) / 1e6,
                 p.seconds, left, p.tensor.c_str());
  };
  import_hf_checkpoint(cl.positional[0], cl.positional[1], options);
  if (!quiet) std::fprintf(stderr, "wrote %s\n", cl.positional[1].c_str());
  return 0;
}

}  // namespace bitrun::cli
