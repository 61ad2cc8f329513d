// Request images on disk, named by their content, for the run pipeline (which reads image files).
//
// Two requests with the same image bytes get the same path, so the pipeline groups them into one
// frame (pipeline/runner.h: a frame is its image files) and decodes, encodes and evaluates their
// images once. What must hold: a path stays valid while a Lease on it lives; the folder holds at
// most `capacity` unleased files beyond the leased ones (the least recently used go first), and is
// removed with the store.
#pragma once

#include <cstdint>
#include <filesystem>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace drivevqa {

class MediaStore {
 public:
  // Takes `folder`, an empty folder made for the store (mkdtemp: no other user can own or read it);
  // it is removed with the store. Throws OutputError when it is not an empty folder.
  MediaStore(std::filesystem::path folder, size_t capacity);
  ~MediaStore();
  MediaStore(const MediaStore&) = delete;
  MediaStore& operator=(const MediaStore&) = delete;

  // Keeps one file in place while it lives.
  class Lease {
   public:
    Lease(MediaStore* store, std::string key, std::filesystem::path path) : store_(store), key_(std::move(key)), path_(std::move(path)) {}
    ~Lease();
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    const std::filesystem::path& path() const { return path_; }

   private:
    MediaStore* store_;
    std::string key_;
    std::filesystem::path path_;
  };

  // The file holding `bytes` (written atomically the first time). Throws OutputError when it
  // cannot be written. Safe to call from several threads.
  std::unique_ptr<Lease> put(const std::vector<uint8_t>& bytes);
  // The file holding exactly these bytes when the store has one now (a lease on it, as put gives),
  // else null and nothing is written. Safe to call from several threads.
  std::unique_ptr<Lease> lease_if_held(const std::vector<uint8_t>& bytes);

  const std::filesystem::path& folder() const { return folder_; }

 private:
  struct Entry {
    std::filesystem::path path;
    size_t leases = 0;
    std::list<std::string>::iterator idle;  // in idle_ when leases == 0, else idle_.end()
  };
  void release(const std::string& key);
  std::unique_ptr<Lease> lease_locked(std::map<std::string, Entry>::iterator it);  // with mutex_ held
  // The entry holding exactly `bytes`, or entries_.end(); with mutex_ held.
  std::map<std::string, Entry>::iterator find_locked(const std::string& content, const std::vector<uint8_t>& bytes);
  void evict_idle();  // with mutex_ held

  std::filesystem::path folder_;
  size_t capacity_;
  std::mutex mutex_;
  std::map<std::string, Entry> entries_;  // by "<content fingerprint>/<serial>"
  uint64_t serial_ = 0;
  std::list<std::string> idle_;  // unleased entries, least recently used first
};

}  // namespace drivevqa
