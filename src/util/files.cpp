#include "util/files.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "util/error.h"
#include "util/interrupt.h"

namespace drivevqa {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kWaitSliceMs = 100;     // longest wait between two interrupt checks
constexpr int kSpinGuardMs = 10;      // pause when a file says "ready" yet has no data
constexpr size_t kFirstChunk = 1 << 16;

std::string type_words(mode_t mode) { return non_regular_words(mode); }

std::string open_error_words(const std::filesystem::path& path, int error) {
  switch (error) {
    case ENOENT: return "not found";
    case EACCES:
    case EPERM: return "permission denied";
    case ENOTDIR: return "not found (a part of its path is not a folder)";
    case ELOOP: return "cannot open (too many levels of symbolic links: a link loop?)";
    case ENAMETOOLONG: return "cannot open (the name is too long)";
    case EMFILE:
    case ENFILE: return "cannot open (too many open files)";
    case ENXIO: {
      // open() of a socket fails this way; the name is looked at only to word the error.
      struct stat st {};
      if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) return type_words(st.st_mode) + ", not a regular file";
      return "cannot open (no such device)";
    }
    default: return std::string("cannot open (") + std::strerror(error) + ")";
  }
}

// Waits one slice for data, or for the signal that ends the wait; throws Interrupted.
void wait_one_slice(int fd) {
  pollfd p{fd, POLLIN, 0};
  const int ready = ::poll(fd >= 0 ? &p : nullptr, fd >= 0 ? 1 : 0, kWaitSliceMs);
  throw_if_interrupted();
  if (ready > 0) ::poll(nullptr, 0, kSpinGuardMs);  // regular files always say "ready": no busy loop
  throw_if_interrupted();
}

std::string seconds_words(std::chrono::milliseconds ms) {
  const auto count = ms.count();
  return count % 1000 == 0 ? std::to_string(count / 1000) + " s" : std::to_string(count) + " ms";
}

struct Descriptor {
  int fd = -1;
  ~Descriptor() {
    if (fd >= 0) ::close(fd);
  }
};

// Opens without ever blocking: O_NONBLOCK returns at once on a FIFO, and with EWOULDBLOCK on a file
// another program holds a lease on (retried until the lease is given up or the timeout).
int open_for_reading(const std::filesystem::path& path, const ReadLimits& limits) {
  const auto start = Clock::now();
  for (;;) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd >= 0) return fd;
    const int error = errno;
    if (error == EINTR) {
      throw_if_interrupted();
      continue;
    }
    if (error != EWOULDBLOCK) throw InputError(path.string() + ": " + open_error_words(path, error));
    if (Clock::now() - start >= limits.no_data_timeout) {
      throw InputError(path.string() + ": cannot open it for " + seconds_words(limits.no_data_timeout) +
                       ": another program holds a lease on it");
    }
    wait_one_slice(-1);
  }
}

std::string too_large(const std::filesystem::path& path, uint64_t cap) {
  return path.string() + ": more than the limit of " + std::to_string(cap) + " bytes";
}

// Reads to the end; the size from fstat is a hint only (special files report 0).
std::vector<uint8_t> read_to_end(int fd, const std::filesystem::path& path, uint64_t reported, const ReadLimits& limits) {
  constexpr uint64_t kNoCap = std::numeric_limits<uint64_t>::max();
  const uint64_t cap = limits.max_bytes.value_or(kNoCap);
  // One byte beyond the cap is room enough to see that a file is too large.
  const uint64_t room_limit = cap == kNoCap ? kNoCap : cap + 1;
  std::vector<uint8_t> bytes(static_cast<size_t>(std::min(std::max<uint64_t>(reported + 1, kFirstChunk), room_limit)));
  size_t used = 0;
  auto last_data = Clock::now();
  for (;;) {
    if (used == bytes.size()) bytes.resize(static_cast<size_t>(std::min<uint64_t>(uint64_t{used} * 2, room_limit)));
    const ssize_t n = ::read(fd, bytes.data() + used, bytes.size() - used);
    if (n > 0) {
      used += static_cast<size_t>(n);
      last_data = Clock::now();
      if (used > cap) throw InputError(too_large(path, cap) + " (it grew while it was read)");
      continue;
    }
    if (n == 0) break;
    const int error = errno;
    if (error == EINTR) {
      throw_if_interrupted();
      continue;
    }
    if (error != EAGAIN && error != EWOULDBLOCK) {
      throw InputError(path.string() + ": read error (" + std::strerror(error) + ")");
    }
    if (Clock::now() - last_data >= limits.no_data_timeout) {
      throw InputError(path.string() + ": no data for " + seconds_words(limits.no_data_timeout) +
                       " (a special file that blocks?)");
    }
    wait_one_slice(fd);
  }
  bytes.resize(used);
  return bytes;
}

}  // namespace

std::string non_regular_words(unsigned mode) {
  if (S_ISREG(mode)) return {};
  if (S_ISDIR(mode)) return "is a folder";
  if (S_ISFIFO(mode)) return "is a FIFO (named pipe)";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "is a device";
  if (S_ISSOCK(mode)) return "is a socket";
  return "is not a regular file";
}

std::string unreadable_reason(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return open_error_words(path, errno);
  if (!S_ISREG(st.st_mode)) return non_regular_words(st.st_mode);
  if (::access(path.c_str(), R_OK) != 0 && errno == EACCES) return "permission denied";
  return {};
}

std::vector<uint8_t> read_file_bytes(const std::filesystem::path& path, const ReadLimits& limits) {
  throw_if_interrupted();
  const BlockingCallScope blocking;  // open and read may block on a special file: signals nudge us out
  Descriptor file{open_for_reading(path, limits)};
  struct stat st {};
  if (::fstat(file.fd, &st) != 0) throw InputError(path.string() + ": cannot inspect (" + std::strerror(errno) + ")");
  // Decided by the descriptor, not the name: a path swapped for a FIFO after a check is refused too.
  if (!S_ISREG(st.st_mode)) throw InputError(path.string() + ": " + type_words(st.st_mode) + ", not a regular file");
  const uint64_t reported = st.st_size > 0 ? static_cast<uint64_t>(st.st_size) : 0;
  if (limits.max_bytes && reported > *limits.max_bytes) {
    throw InputError(path.string() + ": is " + std::to_string(reported) + " bytes, more than the limit of " +
                     std::to_string(*limits.max_bytes) + " bytes");
  }
  return read_to_end(file.fd, path, reported, limits);
}

std::string read_text_file(const std::filesystem::path& path, const ReadLimits& limits) {
  const std::vector<uint8_t> bytes = read_file_bytes(path, limits);
  return std::string(bytes.begin(), bytes.end());
}

}  // namespace drivevqa
