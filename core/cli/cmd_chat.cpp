// `bitrun chat`: an interactive chat in the terminal with the model's chat template, through the generation
// pipeline a served chat request runs (bitrun/generation.hpp). The conversation is kept across turns (the engine
// reuses the cached prefix, so earlier turns are not recomputed); /reset clears it,
// /exit or the end of input quits, Ctrl-C stops the answer being written (and quits at the prompt).
#include <signal.h>

#include <atomic>
#include <iostream>

#include "bitrun/tokenizer/chat_template.hpp"
#include "bitrun/base/error.hpp"
#include "bitrun/engine/generation.hpp"
#include "commands.hpp"
#include "options.hpp"
#include "runtime.hpp"

namespace bitrun::cli {
namespace {

std::atomic<bool> g_interrupted{false};
void on_interrupt(int) { g_interrupted = true; }

}  // namespace

int run_chat(const Args& args, char** envp) {
  CommandLine cl = parse_command_line(args, {}, envp, {{"--system", ""}});
  if (cl.help || !cl.positional.empty()) {
    std::cout << "usage: bitrun chat [-m MODEL.gguf] [--system TEXT] [options]\n"
                 "Interactive chat using the model's chat template (chat.template), decoder (decoder.type) and\n"
                 "sampling (sampling.*). Type a message and Enter; /reset starts over, /exit or Ctrl-D quits,\n"
                 "Ctrl-C stops the current answer.\n\n"
              << common_options_help();
    return cl.help ? 0 : 2;
  }
  apply_logging(cl);
  Runtime rt = load_runtime(*cl.host, cl.config, model_path(cl.config));
  const Model& model = *rt.model;
  const ChatTemplate tmpl = select_chat_template(cl.config.get_string("chat.template"), model.tokenizer());
  LocalGenerator generator(rt, cl.config);   // keeps the conversation's prefix between turns

  struct sigaction action {};
  action.sa_handler = on_interrupt;   // no SA_RESTART: Ctrl-C at the prompt ends the read, and the chat
  sigaction(SIGINT, &action, nullptr);

  GenerationPrompt conversation;
  conversation.kind = GenerationPrompt::Kind::Chat;
  std::vector<ChatMessage>& history = conversation.messages;
  const std::string system = cl.value("--system");
  if (!system.empty()) history.push_back({"system", system});
  const std::size_t base = history.size();
  std::cerr << "chat with " << model.name() << " (" << chat_template_name(tmpl) << " template); /reset, /exit\n";
  for (std::string line;;) {
    std::cout << "> " << std::flush;
    g_interrupted = false;
    if (!std::getline(std::cin, line) || line == "/exit") break;
    if (line == "/reset") {
      history.resize(base);
      std::cout << "(conversation cleared)\n";
      continue;
    }
    if (line.empty()) continue;
    history.push_back({"user", line});
    PreparedGeneration prepared;
    try {
      prepared = prepare_generation(cl.config, model, conversation, cl.config.get_int("generation.max_tokens"));
    } catch (const Error& e) {
      std::cout << "(" << e.what() << ": /reset to start over)\n";
      history.pop_back();
      continue;
    }
    GenerationWatch watch;
    watch.client_alive = [] { return !g_interrupted; };   // Ctrl-C stops the answer
    Generation generation = generator.start(prepared, std::move(watch));
    std::string answer;
    for (Piece piece; generation.next(piece, std::chrono::hours(1));) {
      answer += piece.text;
      std::cout << piece.text << std::flush;
    }
    const bool stopped = generation.outcome() == Outcome::Disconnected;
    if (!stopped && generation.outcome() != Outcome::Finished) throw Error(generation.error());
    std::cout << (stopped ? " (stopped)\n" : "\n");
    history.push_back({"assistant", answer});
  }
  std::cout << "\n";
  return 0;
}

}  // namespace bitrun::cli
