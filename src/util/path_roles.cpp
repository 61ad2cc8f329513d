#include "util/path_roles.h"

#include <sys/stat.h>

#include "util/error.h"
#include "util/files.h"

namespace drivevqa {
namespace {

// Device and inode for an existing file; the canonical path for one not yet created.
std::string identity_of(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    return "inode " + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  }
  std::error_code ec;
  std::filesystem::path canonical = std::filesystem::weakly_canonical(std::filesystem::absolute(path, ec), ec);
  if (ec) canonical = std::filesystem::absolute(path, ec).lexically_normal();
  return "path " + canonical.string();
}

}  // namespace

std::string describe_non_regular(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return non_regular_words(st.st_mode);
}

void PathRoles::read(std::string flag, const std::filesystem::path& path) {
  if (!path.empty()) entries_.push_back({std::move(flag), path, Role::kRead});
}

void PathRoles::read_folder_files(std::string flag, const std::filesystem::path& folder) {
  std::error_code ec;
  if (folder.empty() || !std::filesystem::is_directory(folder, ec)) return read(std::move(flag), folder);
  for (const auto& file : std::filesystem::directory_iterator(folder, ec)) {
    if (file.is_regular_file(ec)) read(flag, file.path());
  }
}

void PathRoles::write(std::string flag, const std::filesystem::path& path) {
  if (!path.empty()) entries_.push_back({std::move(flag), path, Role::kWrite});
}

void PathRoles::write_in_place(std::string flag, const std::filesystem::path& path) {
  if (!path.empty()) entries_.push_back({std::move(flag), path, Role::kWriteInPlace});
}

void PathRoles::write_folder(std::string flag, const std::filesystem::path& folder) {
  if (!folder.empty()) entries_.push_back({std::move(flag), folder, Role::kWriteFolder});
}

void PathRoles::check() const {
  std::vector<std::string> identities;
  identities.reserve(entries_.size());
  for (const Entry& e : entries_) identities.push_back(identity_of(e.path));
  for (size_t w = 0; w < entries_.size(); ++w) {
    const Entry& out = entries_[w];
    if (out.role == Role::kRead) continue;
    const std::string what = describe_non_regular(out.path);
    struct stat link {};
    if (out.role == Role::kWriteInPlace && ::lstat(out.path.c_str(), &link) == 0 && S_ISLNK(link.st_mode)) {
      throw UsageError(out.flag + " " + out.path.string() + " is a symbolic link: drivevqa does not write through links "
                       "(remove it or choose another path)");
    }
    if (out.role != Role::kWriteFolder && !what.empty()) {
      throw UsageError(out.flag + " " + out.path.string() + " " + what + ", not a regular file: drivevqa writes only "
                       "regular files");
    }
    if (out.role == Role::kWriteFolder && !what.empty() && what != "is a folder") {
      throw UsageError(out.flag + " " + out.path.string() + " " + what + ", not a folder");
    }
    for (size_t o = 0; o < entries_.size(); ++o) {
      if (o == w || identities[o] != identities[w]) continue;
      const Entry& other = entries_[o];
      if (other.role == Role::kRead) {
        throw UsageError(out.flag + " " + out.path.string() + " is the same file as " + other.flag + " " +
                         other.path.string() + ": drivevqa never overwrites a file it reads");
      }
      if (o < w) {
        throw UsageError(other.flag + " " + other.path.string() + " and " + out.flag + " " + out.path.string() +
                         " name the same file: each output needs its own path");
      }
    }
  }
}

}  // namespace drivevqa
