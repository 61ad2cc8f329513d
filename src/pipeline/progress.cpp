#include "pipeline/progress.h"

#include <unistd.h>

#include <cstdio>

namespace drivevqa {

std::string format_duration(double seconds) {
  const long s = static_cast<long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, s % 3600 / 60);
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%lds", s);
  return buf;
}

Progress::Progress(size_t total, size_t already_done, double interval_seconds)
    : total_(total), done_(already_done), terminal_(::isatty(STDERR_FILENO) != 0), interval_(interval_seconds),
      start_(std::chrono::steady_clock::now()), last_print_(start_) {}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::item_done(const std::string& model) {
  ++done_;
  ++done_this_run_;
  print(model, done_ == total_);
}

void Progress::print(const std::string& model, bool force) {
  const auto now = std::chrono::steady_clock::now();
  const double since_last = std::chrono::duration<double>(now - last_print_).count();
  if (!terminal_ && !force && since_last < interval_) return;
  last_print_ = now;
  const double elapsed = elapsed_seconds();
  const double rate = done_this_run_ / std::max(elapsed, 1e-9);
  const double eta = rate > 0 ? (total_ - done_) / rate : 0;
  std::fprintf(stderr, "%sprogress: %zu/%zu (%.0f%%), %.2f questions/s, ETA %s, model %s%s",
               terminal_ ? "\r\033[K" : "", done_, total_, total_ ? 100.0 * done_ / total_ : 100.0, rate,
               format_duration(eta).c_str(), model.c_str(), terminal_ ? "" : "\n");
  std::fflush(stderr);
}

void Progress::finish() {
  if (terminal_) std::fprintf(stderr, "\r\033[K");
}

}  // namespace drivevqa
