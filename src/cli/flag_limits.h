// Range checks for numeric flags, applied while the command line is parsed (exit 2), so that no
// value reaches the engine that could crash it (a huge thread count) or poison it (NaN).
#pragma once

#include <CLI/CLI.hpp>

namespace drivevqa {

// --threads: 0 (all cores) up to 4x this machine's cores, at most 1024.
int max_thread_count();
CLI::Validator thread_count_check();

// A finite number in [low, high]; NaN and infinities are refused (CLI::Range lets NaN through).
CLI::Validator finite_range(double low, double high);

}  // namespace drivevqa
