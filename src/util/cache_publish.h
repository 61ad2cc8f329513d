// Publishing a built artifact (a conversion, a merged adapter, a KB index, a convert --out folder)
// so that no reader ever sees half of it and no builder removes what another may be reading.
//
// What holds:
//   - An artifact is built in a BuildFolder: `<parent>/.<stem>.tmp-<random>`, a fresh folder
//     (mkdtemp) whose owner file `.drivevqa-owner` (host, pid, start time: for people only) is
//     flock-ed by the builder for the folder's whole life. Names are random, never the pid alone,
//     so two containers that are both PID 1 never share one.
//   - Publishing fsyncs the files and the folder, drops the owner file, then makes the result
//     appear with one rename (the folder, or one file in it). Nothing is ever written in place.
//   - An abandoned BuildFolder is recognised by its owner file that nobody holds locked (flock
//     works across PID namespaces and containers on one file system), never by its name: a
//     folder without an owner file (a published entry, a user's folder named like a temporary
//     one) is never removed. A killed builder whose lock the kernel released is cleaned by the
//     next remove_abandoned_builds() of that parent.
//   - Builders of one key serialise on an advisory flock of `<cache>/<key>.lock` (CacheLock);
//     the second waits (in 100 ms slices, ending with Interrupted on SIGINT / SIGTERM) and then
//     reuses the first's result. Lock files are left in place: removing one would let two
//     builders hold "the" lock at once.
// A caller keeps the BuildFolder (and the CacheLock) alive until it has published.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

namespace drivevqa {

// An exclusive flock on `path` (created when missing), held while this object lives.
class CacheLock {
 public:
  // Waits for the lock, saying once (info) that it waits for `what`. Throws OutputError when the
  // lock file cannot be made, Interrupted on a signal while waiting.
  CacheLock(const std::filesystem::path& path, const std::string& what);
  ~CacheLock();
  CacheLock(const CacheLock&) = delete;
  CacheLock& operator=(const CacheLock&) = delete;

 private:
  int fd_ = -1;
};

// A temporary folder to build in, owned (flock-ed) by this process; removed when destroyed unless
// published.
class BuildFolder {
 public:
  // Creates `<parent>/.<stem>.tmp-XXXXXX` (parent is created when missing). Throws OutputError.
  BuildFolder(const std::filesystem::path& parent, const std::string& stem);
  ~BuildFolder();
  BuildFolder(const BuildFolder&) = delete;
  BuildFolder& operator=(const BuildFolder&) = delete;

  const std::filesystem::path& path() const { return path_; }

  // Renames the whole folder to `target`, which must not exist or be an empty folder.
  void publish(const std::filesystem::path& target);
  // Atomically swaps the folder with the existing folder `target` (renameat2 RENAME_EXCHANGE, or
  // rename aside + rename in where the file system cannot), then removes the old content.
  void replace(const std::filesystem::path& target);
  // Renames the file `name` built inside to `target` (replacing a file there), then removes the
  // folder.
  void publish_file(const std::string& name, const std::filesystem::path& target);

 private:
  void seal();  // fsync everything, drop the owner file
  std::filesystem::path path_;
  int owner_fd_ = -1;
  bool published_ = false;
};

// Removes the BuildFolders in `parent` whose owner is gone (their owner file is not locked).
void remove_abandoned_builds(const std::filesystem::path& parent);

// The folder `<cache>/<key>`, built once by `build` (which fills the folder it is given) and then
// reused by every later caller, concurrent ones included. `what` names it in messages.
std::filesystem::path publish_cached_folder(const std::filesystem::path& cache, const std::string& key,
                                            const std::string& what,
                                            const std::function<void(const std::filesystem::path&)>& build);

// The file `path`, built by `build(tmp)` into a temporary file path when `is_current(path)` is
// false; concurrent callers wait on `<path>.lock` and then see the first's file. Returns true when
// this call built it.
bool publish_cached_file(const std::filesystem::path& path, const std::function<bool(const std::filesystem::path&)>& is_current,
                         const std::function<void(const std::filesystem::path&)>& build);

}  // namespace drivevqa
