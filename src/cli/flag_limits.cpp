#include "cli/flag_limits.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <thread>

namespace drivevqa {

int max_thread_count() {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::min(1024, 4 * cores);
}

// An integer range needs no NaN guard: CLI::Range does it (finite_range below is for floats).
CLI::Validator thread_count_check() { return CLI::Range(0, max_thread_count()); }

CLI::Validator finite_range(double low, double high) {
  const std::string range = "[" + CLI::detail::to_string(low) + ", " + CLI::detail::to_string(high) + "]";
  return CLI::Validator(
      [low, high, range](std::string& text) -> std::string {
        double value = 0;
        size_t used = 0;
        try {
          value = std::stod(text, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used != text.size() || used == 0) return "'" + text + "' is not a number";
        if (!std::isfinite(value) || value < low || value > high) return "'" + text + "' is outside " + range;
        return {};
      },
      range);
}

}  // namespace drivevqa
