// Stopping a run cleanly on SIGINT / SIGTERM.
//
// The first signal only sets a flag: long loops check it at safe points (between frames, between
// decoding steps) and throw Interrupted, so that what was answered stays journaled and the results
// so far are written. A second signal ends the process at once (exit code 130).
#pragma once

#include "util/error.h"

namespace drivevqa {

struct Interrupted : Error {
  Interrupted() : Error(ExitCode::kInterrupted, "interrupted") {}
};

// Installs the handlers for SIGINT and SIGTERM (idempotent).
void install_interrupt_handlers();
bool interrupt_requested();
// Throws Interrupted when a signal has arrived.
inline void throw_if_interrupted() {
  if (interrupt_requested()) throw Interrupted();
}

}  // namespace drivevqa
