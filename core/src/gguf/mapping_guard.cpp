#include "gguf/mapping_guard.hpp"

#include <atomic>
#include <csetjmp>
#include <csignal>
#include <cstring>
#include <mutex>

namespace bitrun::detail {
namespace {

// Set by the thread inside copy_from_mapping: where its SIGBUS returns to. (This library is linked at startup, not
// dlopened, so its thread-locals are static TLS: reading one in a signal handler allocates nothing.)
thread_local sigjmp_buf* t_resume = nullptr;
struct sigaction g_previous {};

void on_sigbus(int sig, siginfo_t* info, void* context) {
  if (sigjmp_buf* resume = t_resume) siglongjmp(*resume, 1);
  // Not a guarded copy: whatever handled SIGBUS before us, else the default action (the process ends).
  if ((g_previous.sa_flags & SA_SIGINFO) && g_previous.sa_sigaction) {
    g_previous.sa_sigaction(sig, info, context);
    return;
  }
  if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    g_previous.sa_handler(sig);
    return;
  }
  std::signal(SIGBUS, SIG_DFL);
  std::raise(SIGBUS);
}

void install_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;   // siglongjmp leaves the handler: SIGBUS must not stay blocked
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &g_previous);
  });
}

}  // namespace

bool copy_from_mapping(void* dst, const void* src, std::size_t n) {
  install_handler();
  sigjmp_buf resume;
  sigjmp_buf* const outer = t_resume;
  // savemask 0: saving the signal mask is a system call on every copy (a token's embedding row), and there is
  // nothing to restore, since SA_NODEFER leaves the mask as it was when the handler jumps back.
  if (sigsetjmp(resume, 0) != 0) {   // back from the handler: a page was gone
    t_resume = outer;
    return false;
  }
  t_resume = &resume;
  std::atomic_signal_fence(std::memory_order_seq_cst);   // the copy stays between the two stores
  std::memcpy(dst, src, n);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_resume = outer;
  return true;
}

}  // namespace bitrun::detail
