// Crash safety for runs: every finished answer is appended to a journal beside the results file and
// flushed to disk before the next item starts, so a killed run loses at most the answer in progress.
//
// Format (JSON lines): a header {"drivevqa_journal":1,"input":<hash>,"settings":<hash>} and one
// {"index":i,"subtask":...,"model_routed":...,"model_used":...,"answer":...,"error":bool} per item.
// What must hold: a journal is only ever resumed by a run with the same input bytes and the same
// answer-affecting settings; a torn last line (a kill during the write) is dropped, never trusted.
#pragma once

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "pipeline/runner.h"

namespace drivevqa {

struct JournalKey {
  std::string input_hash;     // of the question file's bytes
  std::string settings_hash;  // of every setting that changes answers
};

class Journal {
 public:
  // Opens `path`, resuming it when its key matches. A journal with another key is an error
  // (UsageError naming the file) unless `overwrite`, which starts it afresh.
  Journal(const std::filesystem::path& path, const JournalKey& key, bool overwrite);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  const std::map<size_t, ItemResult>& done() const { return done_; }
  // Appends and flushes to disk. Throws OutputError naming the file (e.g. disk full).
  void append(size_t index, const ItemResult& result);
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  FILE* file_ = nullptr;
  std::map<size_t, ItemResult> done_;
};

std::string fingerprint(const void* data, size_t size);
inline std::string fingerprint(const std::string& text) { return fingerprint(text.data(), text.size()); }

}  // namespace drivevqa
