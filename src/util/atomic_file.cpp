#include "util/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/error.h"

namespace drivevqa {

AtomicFile::AtomicFile(std::filesystem::path path) : path_(std::move(path)), tmp_(path_.string() + ".partial") {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw OutputError(path_.string() + ": cannot create " + tmp_ + " (" + std::strerror(errno) + ")");
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
  if (::fsync(fd_) != 0) fail("fsync");
  if (::close(fd_) != 0) {
    fd_ = -1;
    ::unlink(tmp_.c_str());
    throw OutputError(path_.string() + ": close failed (" + std::strerror(errno) + ")");
  }
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    ::unlink(tmp_.c_str());
    throw OutputError(path_.string() + ": rename failed (" + reason + ")");
  }
}

void write_file_atomic(const std::filesystem::path& path, const void* data, size_t size) {
  AtomicFile file(path);
  file.write(data, size);
  file.commit();
}

void require_writable_file_path(const std::filesystem::path& path, const std::string& label) {
  const std::string name = path.string() + (label.empty() ? "" : " (" + label + ")");
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw OutputError(name + ": is a directory, not a file");
  const std::filesystem::path parent = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  if (!std::filesystem::is_directory(parent, ec)) throw OutputError(name + ": folder " + parent.string() + " does not exist");
  if (::access(parent.c_str(), W_OK) != 0) throw OutputError(name + ": folder " + parent.string() + " is not writable");
  // access() says yes to root everywhere; creating a file is the real test.
  const std::filesystem::path probe = path.string() + ".probe-" + std::to_string(::getpid());
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) throw OutputError(name + ": cannot create files in " + parent.string() + " (" + std::strerror(errno) + ")");
  ::close(fd);
  std::filesystem::remove(probe, ec);
}

}  // namespace drivevqa
