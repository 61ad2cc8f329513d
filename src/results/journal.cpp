#include "results/journal.h"

#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/error.h"
#include "util/text.h"

namespace drivevqa {
namespace {

using Json = nlohmann::json;

Json header_json(const JournalKey& key) {
  return Json{{"drivevqa_journal", 2}, {"input", key.input_hash}, {"settings", key.settings_hash}};
}

JournalEntry parse_entry(const Json& j) {
  JournalEntry e;
  e.item = j.at("item").get<std::string>();
  ItemResult& r = e.result;
  r.subtask = subtask_from_name(j.at("subtask").get<std::string>());
  r.routed = j.at("model_routed").get<std::string>() == "72B" ? ModelSize::k72B : ModelSize::k7B;
  r.model_used = j.at("model_used").get<std::string>();
  r.answer = j.at("answer").get<std::string>();
  r.is_error = j.at("error").get<bool>();
  r.generated_tokens = json_number<size_t>(j.value("tokens", Json(0))).value_or(0);
  if (const auto votes = j.find("votes"); votes != j.end() && votes->is_object()) r.votes = votes->dump();
  return e;
}

// The journal's whole content, read through its descriptor.
std::string read_all(int fd, const std::filesystem::path& path) {
  std::string text;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw OutputError(path.string() + ": cannot read the journal (" + std::strerror(errno) + ")");
    if (n == 0) return text;
    text.append(buffer, static_cast<size_t>(n));
  }
}

int open_locked(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0644);
  if (fd < 0) {
    if (errno == ELOOP) {
      throw UsageError(path.string() + ": the journal path is a symbolic link; drivevqa does not write through links "
                       "(remove it or choose another --output_file)");
    }
    throw OutputError(path.string() + ": cannot open the journal (" + std::strerror(errno) + ")");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw UsageError(path.string() + ": the journal path is not a regular file; drivevqa does not write to it");
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    ::close(fd);
    if (error == EWOULDBLOCK) {
      throw UsageError(path.string() + ": another drivevqa run is writing these results now (its journal is locked); "
                       "wait for it to finish or choose another --output_file");
    }
    throw OutputError(path.string() + ": cannot lock the journal (" + std::strerror(error) + ")");
  }
  return fd;
}

}  // namespace

std::string journal_item_identity(const QuestionItem& item) {
  return fingerprint(item.scene_token + '\n' + item.frame_token + '\n' + item.question);
}

Journal::Journal(const std::filesystem::path& path, const JournalKey& key, bool overwrite) : path_(path) {
  fd_ = open_locked(path);
  try {
    load(header_json(key).dump(), overwrite);
  } catch (...) {
    ::close(fd_);
    throw;
  }
  if (!entries_.empty()) spdlog::info("resuming: {} answers already in {}", entries_.size(), path.string());
}

// Keeps the trusted prefix of what is there (same header, complete lines this program wrote), or
// starts afresh with `header`.
void Journal::load(const std::string& header, bool overwrite) {
  const std::string text = overwrite ? std::string() : read_all(fd_, path_);
  size_t good_bytes = 0;
  bool resume = false;
  for (size_t start = 0; start < text.size();) {
    const size_t end = text.find('\n', start);
    if (end == std::string::npos) break;  // the last line of a torn write has no newline
    const std::string_view line(text.data() + start, end - start);
    if (start == 0) {
      if (line != header) {
        // A journal without a complete answer (a run that failed or was killed before its first
        // answer was whole) holds nothing to lose.
        if (text.find('\n', end + 1) == std::string::npos) break;
        throw UsageError(path_.string() + ": this journal belongs to a different input file or different settings; "
                         "pass --overwrite to start afresh (its answers will be discarded)");
      }
      resume = true;
    } else {
      // A damaged line, or one this program did not write, ends the trusted prefix.
      const std::optional<Json> j = try_parse_json(line);
      if (!j || !j->is_object() || !j->contains("index")) break;
      const auto index = json_number<size_t>(j->at("index"));
      if (!index) break;
      try {
        entries_[*index] = parse_entry(*j);
      } catch (const std::exception&) {
        break;
      }
    }
    good_bytes = end + 1;
    start = end + 1;
  }
  if (!resume) good_bytes = 0;
  if (::ftruncate(fd_, static_cast<off_t>(good_bytes)) != 0) {
    throw OutputError(path_.string() + ": cannot trim the journal (" + std::strerror(errno) + ")");
  }
  if (::lseek(fd_, 0, SEEK_END) < 0) throw OutputError(path_.string() + ": cannot seek in the journal");
  if (!resume) write_all(header + "\n", "write");
}

Journal::~Journal() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

void Journal::write_all(const std::string& text, const char* what) {
  const char* p = text.data();
  size_t left = text.size();
  while (left > 0) {
    const ssize_t n = ::write(fd_, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw OutputError(path_.string() + ": cannot " + what + " the journal (" + std::strerror(errno) + ")");
    p += n;
    left -= static_cast<size_t>(n);
  }
  while (::fdatasync(fd_) != 0) {
    if (errno != EINTR) throw OutputError(path_.string() + ": cannot " + what + " the journal (" + std::strerror(errno) + ")");
  }
}

const ItemResult* Journal::find(const QuestionItem& item) const {
  const auto it = entries_.find(item.index);
  if (it == entries_.end() || it->second.item != journal_item_identity(item)) return nullptr;
  return &it->second.result;
}

void Journal::append(const QuestionItem& item, const ItemResult& r) {
  JournalEntry entry{journal_item_identity(item), r};
  Json j{{"index", item.index},
         {"item", entry.item},
         {"subtask", std::string(subtask_name(r.subtask))},
         {"model_routed", std::string(model_size_name(r.routed))},
         {"model_used", r.model_used},
         {"answer", r.answer},
         {"error", r.is_error},
         {"tokens", r.generated_tokens}};
  if (!r.votes.empty()) j["votes"] = Json::parse(r.votes);
  write_all(j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n", "append to");
  entries_[item.index] = std::move(entry);
}

}  // namespace drivevqa
