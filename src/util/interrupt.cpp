#include "util/interrupt.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

namespace drivevqa {
namespace {

constexpr int kNudgeSignal = SIGURG;  // ignored by default: harmless if one arrives unexpected
constexpr std::chrono::milliseconds kNudgeInterval{100};

std::atomic<int> g_signals{0};
int g_wake_pipe[2] = {-1, -1};  // the first signal writes a byte; the helper thread waits on it

// Threads inside a BlockingCallScope. Never destroyed: the helper may use it while the process exits.
struct BlockedThreads {
  std::mutex mutex;
  std::vector<pthread_t> threads;
};
BlockedThreads& blocked_threads() {
  static auto* threads = new BlockedThreads;
  return *threads;
}

extern "C" void on_stop_signal(int) {
  const int saved_errno = errno;
  if (g_signals.fetch_add(1) >= 1) {
    static const char kMessage[] = "\ndrivevqa: second signal, exiting now\n";
    [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
    ::_exit(static_cast<int>(ExitCode::kInterrupted));
  }
  const char byte = 1;
  [[maybe_unused]] const ssize_t n = ::write(g_wake_pipe[1], &byte, 1);
  errno = saved_errno;
}

extern "C" void on_nudge(int) {}  // its only effect: the blocked call returns EINTR

// The helper thread (all signals blocked): after the first signal, nudges the blocked threads until
// the process ends.
void nudge_after_first_signal() {
  char byte = 0;
  while (::read(g_wake_pipe[0], &byte, 1) != 1) {
  }
  for (;;) {
    {
      BlockedThreads& b = blocked_threads();
      std::lock_guard lock(b.mutex);  // a listed thread has not left its scope, so it still exists
      for (const pthread_t thread : b.threads) ::pthread_kill(thread, kNudgeSignal);
    }
    std::this_thread::sleep_for(kNudgeInterval);
  }
}

void install_once() {
  if (::pipe2(g_wake_pipe, O_CLOEXEC) != 0) g_wake_pipe[0] = g_wake_pipe[1] = -1;
  if (g_wake_pipe[1] >= 0) ::fcntl(g_wake_pipe[1], F_SETFL, O_NONBLOCK);  // the handler never blocks

  struct sigaction nudge {};
  nudge.sa_handler = on_nudge;
  sigemptyset(&nudge.sa_mask);
  nudge.sa_flags = 0;  // no SA_RESTART: the point is the EINTR
  sigaction(kNudgeSignal, &nudge, nullptr);

  if (g_wake_pipe[0] >= 0) {
    // Started with every signal blocked, so that no SIGINT / SIGTERM is delivered to it.
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    std::thread(nudge_after_first_signal).detach();
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  }

  struct sigaction stop {};
  stop.sa_handler = on_stop_signal;
  sigemptyset(&stop.sa_mask);
  stop.sa_flags = 0;  // no SA_RESTART: a blocked read must come back with EINTR
  sigaction(SIGINT, &stop, nullptr);
  sigaction(SIGTERM, &stop, nullptr);
}

}  // namespace

void install_interrupt_handlers() {
  static std::once_flag once;
  std::call_once(once, install_once);
}

bool interrupt_requested() { return g_signals.load(std::memory_order_relaxed) > 0; }

BlockingCallScope::BlockingCallScope() {
  BlockedThreads& b = blocked_threads();
  std::lock_guard lock(b.mutex);
  b.threads.push_back(::pthread_self());
}

BlockingCallScope::~BlockingCallScope() {
  BlockedThreads& b = blocked_threads();
  std::lock_guard lock(b.mutex);
  const auto it = std::find_if(b.threads.begin(), b.threads.end(), [](pthread_t t) { return ::pthread_equal(t, ::pthread_self()); });
  if (it != b.threads.end()) b.threads.erase(it);
}

}  // namespace drivevqa
