// Stopping a run cleanly on SIGINT / SIGTERM.
//
// The first signal sets a flag: long loops check it at safe points (between frames, between
// decoding steps) and throw Interrupted, so that what was answered stays journaled and the results
// so far are written. A second signal ends the process at once (exit code 130).
//
// The handlers are installed without SA_RESTART, so the first signal also ends a blocked system
// call with EINTR, in whichever thread the kernel delivered it to. A signal can land on another
// thread, or arrive just before a call starts blocking; so after the first signal every thread
// inside a BlockingCallScope is sent SIGURG (a no-op handler, also without SA_RESTART) every
// 100 ms until it leaves the scope.
//
// Contract for code that makes a system call which may block on a user file:
//   - hold a BlockingCallScope around the call (and around nothing that cannot take EINTR);
//   - on EINTR call throw_if_interrupted(), then retry;
//   - a wait of its own (poll, sleep) lasts at most ~100 ms before checking interrupt_requested().
// Elsewhere EINTR can now reach any system call of a thread the signal lands on: retry it.
#pragma once

#include "util/error.h"

namespace drivevqa {

struct Interrupted : Error {
  Interrupted() : Error(ExitCode::kInterrupted, "interrupted") {}
};

// Installs the handlers for SIGINT, SIGTERM and SIGURG and starts the helper thread that sends
// SIGURG after the first signal (idempotent). Call it before reading any user file.
void install_interrupt_handlers();
bool interrupt_requested();
// Throws Interrupted when a signal has arrived.
inline void throw_if_interrupted() {
  if (interrupt_requested()) throw Interrupted();
}

// While alive, marks the calling thread as inside a system call that may block (see above).
class BlockingCallScope {
 public:
  BlockingCallScope();
  ~BlockingCallScope();
  BlockingCallScope(const BlockingCallScope&) = delete;
  BlockingCallScope& operator=(const BlockingCallScope&) = delete;
};

}  // namespace drivevqa
