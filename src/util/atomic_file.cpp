#include "util/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "util/error.h"
#include "util/path_roles.h"

namespace drivevqa {
namespace {

// What is at `path` when it is something drivevqa must never replace: a folder, device, FIFO or
// socket ("" for nothing there, a regular file, or a link, which rename replaces without following).
std::string unreplaceable(const std::filesystem::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || S_ISLNK(st.st_mode)) return {};
  return describe_non_regular(path);
}

}  // namespace

std::filesystem::path folder_of(const std::filesystem::path& path) {
  return path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
}

void sync_folder(const std::filesystem::path& folder) {
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  while (::fsync(fd) != 0 && errno == EINTR) {
  }
  ::close(fd);
}

AtomicFile::AtomicFile(std::filesystem::path path) : path_(std::move(path)) {
  if (const std::string what = unreplaceable(path_); !what.empty()) {
    throw OutputError(path_.string() + ": " + what + ", not a regular file; drivevqa does not replace it");
  }
  std::string pattern = path_.string() + ".partial-XXXXXX";
  fd_ = ::mkostemp(pattern.data(), O_CLOEXEC);  // O_CREAT | O_EXCL: never an existing file or link
  if (fd_ < 0) {
    throw OutputError(path_.string() + ": cannot create a temporary file in " + folder_of(path_).string() + " (" +
                      std::strerror(errno) + ")");
  }
  tmp_ = pattern;
  ::fchmod(fd_, 0644);  // mkostemp makes 0600; results are ordinary readable files
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void AtomicFile::fail(const char* what) {
  const std::string reason = std::strerror(errno);
  ::close(fd_);
  fd_ = -1;
  ::unlink(tmp_.c_str());
  throw OutputError(path_.string() + ": " + what + " failed (" + reason + ")");
}

void AtomicFile::write(const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("write");
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void AtomicFile::commit() {
  while (::fsync(fd_) != 0) {
    if (errno != EINTR) fail("fsync");
  }
  if (::close(fd_) != 0) {
    fd_ = -1;
    ::unlink(tmp_.c_str());
    throw OutputError(path_.string() + ": close failed (" + std::strerror(errno) + ")");
  }
  fd_ = -1;
  // Checked again: something may have appeared at the path while the file was written.
  if (const std::string what = unreplaceable(path_); !what.empty()) {
    ::unlink(tmp_.c_str());
    throw OutputError(path_.string() + ": " + what + ", not a regular file; drivevqa does not replace it");
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    ::unlink(tmp_.c_str());
    throw OutputError(path_.string() + ": rename failed (" + reason + ")");
  }
  sync_folder(folder_of(path_));
}

void write_file_atomic(const std::filesystem::path& path, const void* data, size_t size) {
  AtomicFile file(path);
  file.write(data, size);
  file.commit();
}

void require_writable_file_path(const std::filesystem::path& path, const std::string& label) {
  const std::string name = path.string() + (label.empty() ? "" : " (" + label + ")");
  if (const std::string what = unreplaceable(path); !what.empty()) {
    throw OutputError(name + ": " + what + ", not a regular file");
  }
  const std::filesystem::path parent = folder_of(path);
  struct stat st {};
  if (::stat(parent.c_str(), &st) != 0) {
    throw OutputError(name + ": folder " + parent.string() + (errno == ENOENT ? " does not exist" : ": " + std::string(std::strerror(errno))));
  }
  if (!S_ISDIR(st.st_mode)) throw OutputError(name + ": " + parent.string() + " is not a folder");
  // access() says yes to root everywhere; creating a file is the real test.
  std::string probe = path.string() + ".probe-XXXXXX";
  const int fd = ::mkostemp(probe.data(), O_CLOEXEC);
  if (fd < 0) {
    throw OutputError(name + ": cannot create files in " + parent.string() + " (" + std::strerror(errno) + ")");
  }
  ::close(fd);
  ::unlink(probe.c_str());
}

}  // namespace drivevqa
