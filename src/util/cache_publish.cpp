#include "util/cache_publish.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <thread>

#include "util/atomic_file.h"
#include "util/error.h"
#include "util/interrupt.h"

namespace drivevqa {
namespace {

constexpr char kOwnerFile[] = ".drivevqa-owner";

std::string errno_text() { return std::strerror(errno); }

void sync_path(const std::filesystem::path& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return;
  while (::fsync(fd) != 0 && errno == EINTR) {
  }
  ::close(fd);
}

// flock that retries EINTR; returns false when another holder has it (LOCK_NB).
bool try_flock(int fd) {
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EINTR) return false;
  }
  return true;
}

// A new empty folder `<parent>/.<stem>.<kind>-XXXXXX`.
std::filesystem::path make_unique_folder(const std::filesystem::path& parent, const std::string& stem, const char* kind) {
  std::string pattern = (parent / ("." + stem + "." + kind + "-XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw OutputError(parent.string() + ": cannot create a temporary folder (" + errno_text() + ")");
  }
  ::chmod(pattern.c_str(), 0755);
  return pattern;
}

std::string owner_text() {
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  return std::string("host ") + host + " pid " + std::to_string(::getpid()) + " started " +
         std::to_string(std::time(nullptr)) + "\n";
}

}  // namespace

CacheLock::CacheLock(const std::filesystem::path& path, const std::string& what) {
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);  // a read-only lock file locks as well
  if (fd_ < 0) throw OutputError(path.string() + ": cannot create the lock file (" + errno_text() + ")");
  bool said = false;
  while (!try_flock(fd_)) {
    if (errno == ENOLCK || errno == EOPNOTSUPP || errno == ENOSYS) {
      // A file system without flock (some network mounts): publishing stays atomic, builders of
      // one key may just both build.
      spdlog::warn("{}: this file system cannot lock files; concurrent runs may build the same entry twice", path.string());
      return;
    }
    if (errno != EWOULDBLOCK) {
      const std::string reason = errno_text();
      ::close(fd_);
      throw OutputError(path.string() + ": cannot lock (" + reason + ")");
    }
    if (!said) spdlog::info("waiting for another process making the {} ({})", what, path.string());
    said = true;
    try {
      throw_if_interrupted();
    } catch (...) {
      ::close(fd_);
      throw;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

CacheLock::~CacheLock() { ::close(fd_); }

BuildFolder::BuildFolder(const std::filesystem::path& parent, const std::string& stem) {
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  if (ec) throw OutputError(parent.string() + ": cannot create folder (" + ec.message() + ")");
  path_ = make_unique_folder(parent, stem, "tmp");
  // The owner file appears under its name only once locked, so a cleaner never sees it unlocked.
  const std::filesystem::path fresh = path_ / ".owner-new";
  owner_fd_ = ::open(fresh.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  // Without flock support nobody can lock it either, so no cleaner will ever take it for abandoned.
  if (owner_fd_ < 0 || (!try_flock(owner_fd_) && errno != ENOLCK && errno != EOPNOTSUPP && errno != ENOSYS)) {
    const std::string reason = errno_text();
    std::filesystem::remove_all(path_, ec);
    if (owner_fd_ >= 0) ::close(owner_fd_);
    throw OutputError(path_.string() + ": cannot create its lock file (" + reason + ")");
  }
  const std::string text = owner_text();
  if (::write(owner_fd_, text.data(), text.size()) < 0) {
    spdlog::debug("{}: owner note not written", path_.string());
  }
  std::filesystem::rename(fresh, path_ / kOwnerFile, ec);
}

BuildFolder::~BuildFolder() {
  std::error_code ec;
  if (!published_) std::filesystem::remove_all(path_, ec);  // still locked: no cleaner races us
  if (owner_fd_ >= 0) ::close(owner_fd_);
}

void BuildFolder::seal() {
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(path_, ec)) {
    if (e.is_regular_file(ec)) sync_path(e.path(), O_RDONLY);
    else if (e.is_directory(ec)) sync_folder(e.path());
  }
  // Published content has no owner file: only a folder with one is ever taken for abandoned.
  // The lock stays held (on the unlinked file) until the rename is done.
  std::filesystem::remove(path_ / kOwnerFile, ec);
  sync_folder(path_);
}

void BuildFolder::publish(const std::filesystem::path& target) {
  seal();
  if (::rename(path_.c_str(), target.c_str()) != 0) {
    throw OutputError(target.string() + ": cannot move the finished " + path_.filename().string() + " into place (" +
                      errno_text() + ")");
  }
  published_ = true;
  sync_folder(folder_of(target));
}

void BuildFolder::replace(const std::filesystem::path& target) {
  seal();
  std::error_code ec;
  if (::renameat2(AT_FDCWD, path_.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) != 0) {
    if (errno != EINVAL && errno != ENOSYS) {
      throw OutputError(target.string() + ": cannot replace it (" + errno_text() + ")");
    }
    // No atomic exchange here: the old folder goes aside first; a failure puts it back.
    const std::filesystem::path aside = make_unique_folder(folder_of(target), target.filename().string(), "old");
    if (::rename(target.c_str(), aside.c_str()) != 0) {
      const std::string reason = errno_text();
      std::filesystem::remove(aside, ec);
      throw OutputError(target.string() + ": cannot move it aside (" + reason + ")");
    }
    if (::rename(path_.c_str(), target.c_str()) != 0) {
      const std::string reason = errno_text();
      ::rename(aside.c_str(), target.c_str());
      throw OutputError(target.string() + ": cannot move the new folder into place (" + reason + ")");
    }
    std::filesystem::rename(aside, path_, ec);
  }
  sync_folder(folder_of(target));
  std::filesystem::remove_all(path_, ec);  // the old content, now under the temporary name
  published_ = true;
}

void BuildFolder::publish_file(const std::string& name, const std::filesystem::path& target) {
  seal();
  if (::rename((path_ / name).c_str(), target.c_str()) != 0) {
    throw OutputError(target.string() + ": cannot move the finished file into place (" + errno_text() + ")");
  }
  sync_folder(folder_of(target));
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  published_ = true;
}

void remove_abandoned_builds(const std::filesystem::path& parent) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(parent, ec)) {
    if (e.is_symlink(ec) || !e.is_directory(ec)) continue;
    const std::filesystem::path owner = e.path() / kOwnerFile;
    const int fd = ::open(owner.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) continue;  // no owner file: not a build folder (or one being published)
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && try_flock(fd)) {
      char note[256] = {};
      const ssize_t n = ::read(fd, note, sizeof(note) - 1);
      std::string who = n > 0 ? std::string(note, static_cast<size_t>(n)) : "unknown owner\n";
      who.pop_back();
      spdlog::info("removing {}, left by an interrupted build ({})", e.path().string(), who);
      std::error_code rm;
      std::filesystem::remove_all(e.path(), rm);
    }
    ::close(fd);
  }
}

std::filesystem::path publish_cached_folder(const std::filesystem::path& cache, const std::string& key,
                                            const std::string& what,
                                            const std::function<void(const std::filesystem::path&)>& build) {
  std::error_code ec;
  const std::filesystem::path target = cache / key;
  const auto complete = [&] { return std::filesystem::exists(target / ".complete", ec); };
  if (complete()) {
    spdlog::info("using the cached {} ({})", what, target.string());
    return target;
  }
  std::filesystem::create_directories(cache, ec);
  if (ec) throw OutputError(cache.string() + ": cannot create the cache (" + ec.message() + ")");
  CacheLock lock(cache / (key + ".lock"), what);
  if (complete()) {
    spdlog::info("using the cached {} ({}), made by another process", what, target.string());
    return target;
  }
  spdlog::info("making the {} in {} (once; later runs reuse it)", what, target.string());
  remove_abandoned_builds(cache);
  BuildFolder tmp(cache, key);
  build(tmp.path());
  {
    const std::string text = key + "\n";
    std::FILE* f = std::fopen((tmp.path() / ".complete").c_str(), "w");
    if (!f || std::fwrite(text.data(), 1, text.size(), f) != text.size() || std::fclose(f) != 0) {
      throw OutputError(tmp.path().string() + ": cannot write its completion mark");
    }
  }
  if (std::filesystem::exists(std::filesystem::symlink_status(target, ec))) {
    // Not complete, so never used by anyone: moved aside, then removed.
    BuildFolder old(cache, key + ".incomplete");
    std::filesystem::rename(target, old.path() / "entry", ec);
    if (ec) throw OutputError(target.string() + ": cannot move an incomplete entry aside (" + ec.message() + ")");
  }
  tmp.publish(target);
  return target;
}

bool publish_cached_file(const std::filesystem::path& path, const std::function<bool(const std::filesystem::path&)>& is_current,
                         const std::function<void(const std::filesystem::path&)>& build) {
  if (is_current(path)) return false;
  const std::filesystem::path parent = folder_of(path);
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  CacheLock lock(path.string() + ".lock", path.filename().string());
  if (is_current(path)) return false;
  remove_abandoned_builds(parent);
  const std::string name = path.filename().string();
  BuildFolder tmp(parent, name);
  build(tmp.path() / name);
  tmp.publish_file(name, path);
  return true;
}

}  // namespace drivevqa
