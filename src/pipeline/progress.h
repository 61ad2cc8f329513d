// Progress of a run on stderr: done/total, questions per second, ETA and the current model.
// On a terminal one line is redrawn in place; otherwise a plain line is printed every `interval`.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace drivevqa {

class Progress {
 public:
  Progress(size_t total, size_t already_done, double interval_seconds = 10.0);
  // Called after each answered item.
  void item_done(const std::string& model);
  // Clears the redrawn line (terminal) before other output is printed.
  void finish();
  double elapsed_seconds() const;

 private:
  void print(const std::string& model, bool force);

  size_t total_;
  size_t done_;
  size_t done_this_run_ = 0;
  bool terminal_;
  double interval_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_print_;
};

std::string format_duration(double seconds);

}  // namespace drivevqa
