#include "util/interrupt.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>

namespace drivevqa {
namespace {

std::atomic<int> g_signals{0};

extern "C" void on_stop_signal(int) {
  if (g_signals.fetch_add(1) >= 1) {
    static const char kMessage[] = "\ndrivevqa: second signal, exiting now\n";
    [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
    ::_exit(static_cast<int>(ExitCode::kInterrupted));
  }
}

}  // namespace

void install_interrupt_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

bool interrupt_requested() { return g_signals.load(std::memory_order_relaxed) > 0; }

}  // namespace drivevqa
