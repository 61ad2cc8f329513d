// Every path one command reads or writes, checked together before any work, so that no output can
// replace an input or another output of the same command.
//
// What must hold after check(): no two registered paths that are written name the same file, no
// written path names a file that is read, and every written file is a regular file or does not
// exist yet (a device, FIFO or folder is never replaced). "The same file" means the same device and
// inode for files that exist (links, "./x" and "x", hard links all count), and the same canonical
// path for files not yet created.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace drivevqa {

class PathRoles {
 public:
  // `flag` names the path in messages, e.g. "--json_file" or "the journal of --output_file".
  // Empty paths are ignored, so optional flags can be registered unconditionally.
  void read(std::string flag, const std::filesystem::path& path);
  // A folder whose regular files are read (a model folder): each file directly in it counts.
  void read_folder_files(std::string flag, const std::filesystem::path& folder);
  void write(std::string flag, const std::filesystem::path& path);
  // A file written in place (a journal appended to): as write(), and it must not be a link.
  void write_in_place(std::string flag, const std::filesystem::path& path);
  // A folder files are written into (--dump_prompts): must be a folder or not exist, and no input.
  void write_folder(std::string flag, const std::filesystem::path& folder);

  // Throws UsageError (exit 2) on the first conflict, naming both flags and the path.
  void check() const;

 private:
  enum class Role { kRead, kWrite, kWriteInPlace, kWriteFolder };
  struct Entry {
    std::string flag;
    std::filesystem::path path;
    Role role;
  };
  std::vector<Entry> entries_;
};

// What a path is, in words, for messages: "is a folder", "is a FIFO (named pipe)", "is a device",
// ...; empty for a regular file or a path that does not exist.
std::string describe_non_regular(const std::filesystem::path& path);

}  // namespace drivevqa
