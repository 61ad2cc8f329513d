#include "serve/media_store.h"

#include "util/atomic_file.h"
#include "util/error.h"
#include "util/files.h"
#include "util/text.h"

namespace drivevqa {

MediaStore::MediaStore(std::filesystem::path folder, size_t capacity) : folder_(std::move(folder)), capacity_(capacity) {
  std::error_code ec;
  if (!std::filesystem::is_directory(folder_, ec) || !std::filesystem::is_empty(folder_, ec) || ec) {
    throw OutputError(folder_.string() + ": the request image folder must be an empty folder made for it");
  }
}

MediaStore::~MediaStore() {
  std::error_code ec;
  std::filesystem::remove_all(folder_, ec);
}

MediaStore::Lease::~Lease() { store_->release(key_); }

std::unique_ptr<MediaStore::Lease> MediaStore::put(const std::vector<uint8_t>& bytes) {
  // The fingerprint is not a cryptographic hash: another client could send different bytes with
  // the same one, so an entry is shared only when its file holds exactly these bytes.
  // Entries are keyed "<fingerprint>/<serial>", and a serial is never used twice: a file name never
  // comes back with other bytes, so caches keyed by path (decoded images, held prefixes) stay true.
  const std::string content = fingerprint(bytes.data(), bytes.size()) + "/";
  std::lock_guard lock(mutex_);
  auto it = find_locked(content, bytes);
  if (it == entries_.end()) {
    const std::string serial = std::to_string(++serial_);
    const std::filesystem::path path = folder_ / (serial + ".img");
    write_file_atomic(path, bytes.data(), bytes.size());
    it = entries_.emplace(content + serial, Entry{path, 0, idle_.end()}).first;
  }
  return lease_locked(it);
}

std::unique_ptr<MediaStore::Lease> MediaStore::lease_if_held(const std::vector<uint8_t>& bytes) {
  const std::string content = fingerprint(bytes.data(), bytes.size()) + "/";
  std::lock_guard lock(mutex_);
  const auto it = find_locked(content, bytes);
  return it == entries_.end() ? nullptr : lease_locked(it);
}

std::unique_ptr<MediaStore::Lease> MediaStore::lease_locked(std::map<std::string, Entry>::iterator it) {
  if (it->second.idle != idle_.end()) {  // an idle entry taken again (a new one was never idle)
    idle_.erase(it->second.idle);
    it->second.idle = idle_.end();
  }
  ++it->second.leases;
  return std::make_unique<Lease>(this, it->first, it->second.path);
}

std::map<std::string, MediaStore::Entry>::iterator MediaStore::find_locked(const std::string& content,
                                                                          const std::vector<uint8_t>& bytes) {
  auto it = entries_.lower_bound(content);
  for (; it != entries_.end() && it->first.starts_with(content); ++it) {
    if (read_file_bytes(it->second.path) == bytes) return it;
  }
  return entries_.end();
}

void MediaStore::release(const std::string& key) {
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(key);
  if (it == entries_.end() || --it->second.leases > 0) return;
  it->second.idle = idle_.insert(idle_.end(), key);
  evict_idle();
}

void MediaStore::evict_idle() {
  while (idle_.size() > capacity_) {
    const auto it = entries_.find(idle_.front());
    idle_.pop_front();
    std::error_code ec;
    std::filesystem::remove(it->second.path, ec);
    entries_.erase(it);
  }
}

}  // namespace drivevqa
