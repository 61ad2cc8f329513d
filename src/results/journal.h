// Crash safety for runs: every finished answer is appended to a journal beside the results file and
// flushed to disk before the next item starts, so a killed run loses at most the answer in progress.
//
// Format (JSON lines): a header {"drivevqa_journal":2,"input":<hash>,"settings":<hash>} and one
// {"index":i,"item":<identity>,"subtask":...,"model_routed":...,"model_used":...,"answer":...,
// "error":bool,"tokens":n} per answer; a later line for the same index replaces an earlier one.
// What must hold: a journal is only ever resumed by a run with the same input bytes and the same
// answer-affecting settings; a torn last line (a kill during the write) is dropped, never trusted;
// an answer is reused only for the item whose identity (scene, frame, question) it carries; and
// one journal is written by one run at a time (an exclusive lock held for the Journal's life).
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "dataset/question_file.h"
#include "results/item_result.h"

namespace drivevqa {

struct JournalKey {
  std::string input_hash;     // of the question file's bytes
  std::string settings_hash;  // of every setting that changes answers
};

struct JournalEntry {
  std::string item;  // journal_item_identity() of the item it answered
  ItemResult result;
};

// Scene, frame and question of an item, hashed: what a journaled answer must match to be reused.
std::string journal_item_identity(const QuestionItem& item);

class Journal {
 public:
  // Opens `path` (never through a symbolic link; only a regular file), locks it for this run and
  // resumes it when its key matches. Another run holding the lock is a UsageError naming the
  // file. A journal with another key is a UsageError unless `overwrite`, which starts it afresh.
  Journal(const std::filesystem::path& path, const JournalKey& key, bool overwrite);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Every trusted entry by item index, whatever item it names (see find()).
  const std::map<size_t, JournalEntry>& entries() const { return entries_; }
  // The journaled result for `item`, or null when there is none or it belongs to another item.
  const ItemResult* find(const QuestionItem& item) const;
  // Appends and flushes to disk. Throws OutputError naming the file (e.g. disk full).
  void append(const QuestionItem& item, const ItemResult& result);
  const std::filesystem::path& path() const { return path_; }

 private:
  void load(const std::string& header, bool overwrite);
  void write_all(const std::string& text, const char* what);
  std::filesystem::path path_;
  int fd_ = -1;
  std::map<size_t, JournalEntry> entries_;
};

}  // namespace drivevqa
