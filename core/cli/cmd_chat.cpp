// `bitrun chat`: an interactive chat in the terminal with the model's chat template. The conversation is kept
// across turns (the engine reuses the cached prefix, so earlier turns are not recomputed); /reset clears it,
// /exit or the end of input quits, Ctrl-C stops the answer being written (and quits at the prompt).
#include <signal.h>

#include <atomic>
#include <iostream>

#include "bitrun/chat_template.hpp"
#include "bitrun/engine.hpp"
#include "bitrun/error.hpp"
#include "bitrun/stop_strings.hpp"
#include "bitrun/tokenizer.hpp"
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
  const Tokenizer& tok = model.tokenizer();
  const ChatTemplate tmpl = select_chat_template(cl.config.get_string("chat.template"), tok);
  std::unique_ptr<Decoder> decoder = rt.host->create_decoder(cl.config.get_string("decoder.type"), cl.config);

  struct sigaction action {};
  action.sa_handler = on_interrupt;   // no SA_RESTART: Ctrl-C at the prompt ends the read, and the chat
  sigaction(SIGINT, &action, nullptr);

  std::vector<ChatMessage> history;
  const std::string system = cl.value("--system");
  if (!system.empty()) history.push_back({"system", system});
  const std::size_t base = history.size();
  Engine engine(model);
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
    const DecodeRequest request =
        make_decode_request(cl.config, model, encode_chat(tok, tmpl, history, /*add_generation_prompt=*/true),
                       cl.config.get_int("generation.max_tokens"));
    if (static_cast<std::int64_t>(request.prompt.size()) >= request.context_size) {
      std::cout << "(the conversation no longer fits the context of " << request.context_size
                << " tokens: /reset to start over)\n";
      history.pop_back();
      continue;
    }
    TextStream text(tok, cl.config.get_string_list("generation.stop"));
    std::string answer;
    Engine::SequenceId id = 0;
    id = engine.add(decoder->start(request), request.context_size,
                    [&](Engine::SequenceId, const std::vector<std::int32_t>& t) {
                      for (std::int32_t token : t) {
                        const std::string shown = text.push(token);
                        answer += shown;
                        std::cout << shown << std::flush;
                        if (text.stopped()) break;
                      }
                      if (text.stopped()) engine.cancel(id);
                    });
    while (engine.step()) {
      if (g_interrupted) engine.cancel(id);
    }
    throw_if_failed(engine, id);
    if (!g_interrupted) {
      const std::string tail = text.finish();
      answer += tail;
      std::cout << tail;
    }
    std::cout << (g_interrupted ? " (stopped)\n" : "\n");
    engine.forget(id);
    history.push_back({"assistant", answer});
  }
  std::cout << "\n";
  return 0;
}

}  // namespace bitrun::cli
