// Elapsed wall time, for the stage timings the summaries and benchmarks report.
#pragma once

#include <chrono>

namespace drivevqa {

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace drivevqa
