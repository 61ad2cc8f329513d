// A whole run: items in, results file out, with a journal that makes it resumable.
//
// What must hold: results come out in input order whatever order items are answered in; each
// answer is in the journal as soon as it is known; re-running the same job answers only what
// the journal lacks, and its results file equals that of an uninterrupted run.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dataset/question_file.h"
#include "pipeline/runner.h"
#include "results/journal.h"

namespace drivevqa {

struct RunJob {
  std::vector<QuestionItem> items;
  std::filesystem::path output_file;
  JournalKey journal_key;
  bool overwrite_journal = false;
  bool print_answers = false;  // each question and answer on stdout as it finishes
};

struct RunSummary {
  size_t items = 0;
  size_t answered_now = 0;     // by a model in this run
  size_t from_journal = 0;
  size_t replayed = 0;           // journaled items decoded again beside their frame's unanswered ones
  size_t replay_mismatches = 0;  // of those, answers that came out different from the journal's
  size_t journal_mismatches = 0; // journal entries ignored: they carry another item's identity
  size_t errors = 0;
  double seconds = 0;
  std::map<std::string, size_t> per_subtask_model;  // "Prediction / 7B" -> count
  RunCounters counters;
  double peak_rss_mb = 0;  // the process's peak resident memory
};

std::filesystem::path journal_path_for(const std::filesystem::path& output_file);

// Answers the job's items with `runner`, appending each answer to the journal
// (journal_path_for(output_file)) as it is known, then writes the results file atomically.
// Throws OutputError (results or journal cannot be written; the journal keeps what was
// appended), Error(kInterrupted) after Ctrl-C / SIGTERM (the results file then holds the items
// answered so far, the journal all of them), ModelError / MemoryError when the 7B model cannot be
// used (the journal keeps what was answered). The journal stays locked while it runs.
RunSummary run_job(const RunJob& job, Runner& runner);

// The summary as JSON (--stats_json): counts, stage seconds, peak memory.
nlohmann::ordered_json stats_json(const RunSummary& summary);

// Multi-line human summary (counts per subtask and model, errors, time, tokens).
std::string describe(const RunSummary& summary);

}  // namespace drivevqa
