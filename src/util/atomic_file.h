// Writing files: every file drivevqa writes appears at its path only when complete.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

namespace drivevqa {

// Fails early (OutputError naming `label` and the path) when `path` could never be written as a
// file: it is a folder, a device, a FIFO or a socket, its folder is missing or not writable, or a
// file cannot be created there. Creates and removes a probe file beside it; `path` is left as it is.
void require_writable_file_path(const std::filesystem::path& path, const std::string& label);

// A file that appears at its path only when complete: written to a new temporary file beside it
// ("<path>.partial-XXXXXX", created exclusively, so no planted file or link is ever followed),
// flushed to disk and renamed over `path` by commit(), which then syncs the folder. A link at
// `path` is replaced, never written through; a non-regular file at `path` (a device, a FIFO) is
// refused. Destroyed uncommitted, it removes the temporary file. Every failure throws OutputError
// naming the path.
class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);
  void commit();

 private:
  void fail(const char* what);
  std::filesystem::path path_;
  std::string tmp_;
  int fd_ = -1;
};

// Writes `bytes` to `path` atomically: a temp file in the same folder, fsync, rename.
// On failure the previous file at `path` is untouched. Throws OutputError naming the path.
void write_file_atomic(const std::filesystem::path& path, const void* data, size_t size);
inline void write_file_atomic(const std::filesystem::path& path, const std::string& text) {
  write_file_atomic(path, text.data(), text.size());
}

// The folder holding `path` ("." for a bare name).
std::filesystem::path folder_of(const std::filesystem::path& path);
// fsync of a folder: a rename or a new entry in it is durable only once this returns. Best effort:
// a folder that cannot be opened is left as it is.
void sync_folder(const std::filesystem::path& folder);

}  // namespace drivevqa
