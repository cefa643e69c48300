// `bitrun config` (show / check the effective configuration) and `bitrun generate-config` (write a commented
// default file).
#include <fstream>
#include <iostream>

#include "bitrun/base/error.hpp"
#include "commands.hpp"
#include "options.hpp"

namespace bitrun::cli {

int run_config(const Args& args, char** envp) {
  CommandLine cl = parse_command_line(args, {"--print", "--check", "--no-origins"}, envp);
  auto has = [&](const char* f) { return cl.has_flag(f); };
  if (cl.help || (!has("--print") && !has("--check"))) {
    std::cout << "usage: bitrun config --print [--no-origins] [options]   show the effective configuration\n"
                 "       bitrun config --check -c FILE [options]          validate, print nothing on success\n\n"
              << common_options_help();
    return cl.help ? 0 : 2;
  }
  if (!cl.positional.empty()) throw ConfigError("unexpected argument '" + cl.positional.front() + "'");
  apply_logging(cl);
  if (has("--print")) std::cout << cl.config.to_yaml(!has("--no-origins"));
  return 0;
}

int run_generate_config(const Args& args, char** envp) {
  CommandLine cl = parse_command_line(args, {"--force"}, envp);
  if (cl.help) {
    std::cout << "usage: bitrun generate-config [FILE] [--force]\n"
                 "Writes a commented config file with every key at its default (stdout when FILE is omitted): the\n"
                 "core's keys and those of the plugins found (see `bitrun info`).\n";
    return 0;
  }
  if (cl.positional.size() > 1) throw ConfigError("generate-config takes at most one FILE");
  if (cl.positional.empty()) {
    std::cout << default_config_yaml(cl.config.schema());
    return 0;
  }
  std::filesystem::path out = cl.positional.front();
  bool force = cl.has_flag("--force");
  if (std::filesystem::exists(out) && !force)
    throw Error(out.string() + " already exists (use --force to overwrite)");
  std::ofstream file(out);
  file << default_config_yaml(cl.config.schema());
  if (!file.flush()) throw Error(out.string() + ": cannot write");
  std::cerr << "wrote " << out.string() << "\n";
  return 0;
}

}  // namespace bitrun::cli
