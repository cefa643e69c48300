// The bitrun subcommands. Each takes the raw arguments after its name and returns the process exit code.
#pragma once

#include <string>
#include <vector>

namespace bitrun::cli {

using Args = std::vector<std::string>;

int run_info(const Args& args, char** envp);
int run_config(const Args& args, char** envp);
int run_generate_config(const Args& args, char** envp);
int run_bench(const Args& args, char** envp);
int run_chat(const Args& args, char** envp);
int run_convert(const Args& args, char** envp);
int run_import(const Args& args, char** envp);
int run_generate(const Args& args, char** envp);
int run_perplexity(const Args& args, char** envp);
int run_serve(const Args& args, char** envp);
int run_synth(const Args& args, char** envp);

}  // namespace bitrun::cli
