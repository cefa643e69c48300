// bitrun: command-line entry point. Dispatches to a subcommand and turns any bitrun::Error into a one-line
// message and a non-zero exit code.
#include <cstring>
#include <functional>
#include <iostream>
#include <map>

#include "bitrun/base/error.hpp"
#include "bitrun/version.hpp"
#include "commands.hpp"

extern char** environ;

namespace {

using bitrun::cli::Args;

struct Command {
  std::function<int(const Args&, char**)> run;
  const char* summary;
};

const std::map<std::string, Command>& commands() {
  static const std::map<std::string, Command> table = {
      {"info", {bitrun::cli::run_info, "CPU features, plugins found, and the backend bitrun would choose"}},
      {"config", {bitrun::cli::run_config, "print or check the effective configuration"}},
      {"generate-config", {bitrun::cli::run_generate_config, "write a commented default config file"}},
      {"generate", {bitrun::cli::run_generate, "continue a prompt (configured decoder and sampling), streamed"}},
      {"chat", {bitrun::cli::run_chat, "interactive chat in the terminal (the model's chat template)"}},
      {"serve", {bitrun::cli::run_serve, "OpenAI-compatible HTTP server (chat, completions, streaming, metrics)"}},
      {"bench", {bitrun::cli::run_bench, "measure load, prefill and decode speed, multi-row cost, bandwidth"}},
      {"perplexity", {bitrun::cli::run_perplexity, "score a text file with a model"}},
      {"synth", {bitrun::cli::run_synth, "write a synthetic benchmark model (real shapes, random ternary weights)"}},
      {"convert", {bitrun::cli::run_convert, "re-encode a GGUF to another weight type"}},
      {"import", {bitrun::cli::run_import, "a Hugging Face checkpoint folder (safetensors) to GGUF"}},
  };
  return table;
}

void print_usage(std::ostream& out) {
  out << "bitrun " << bitrun::kVersion << " - ternary (BitNet b1.58) LLM runtime for CPUs\n\n"
      << "usage: bitrun <command> [options]   (bitrun <command> --help for details)\n\ncommands:\n";
  for (const auto& [name, cmd] : commands()) {
    out << "  " << name << std::string(name.size() < 16 ? 16 - name.size() : 1, ' ') << cmd.summary << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "help")) {
    print_usage(std::cout);
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    std::cout << "bitrun " << bitrun::kVersion << "\n";
    return 0;
  }
  auto it = commands().find(argv[1]);
  if (it == commands().end()) {
    std::cerr << "bitrun: unknown command '" << argv[1] << "'\n\n";
    print_usage(std::cerr);
    return 2;
  }
  Args args(argv + 2, argv + argc);
  try {
    return it->second.run(args, environ);
  } catch (const bitrun::Error& e) {
    std::cerr << "bitrun " << argv[1] << ": error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "bitrun " << argv[1] << ": internal error: " << e.what() << "\n";
    return 70;
  }
}
