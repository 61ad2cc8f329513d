// The knowledge base index: a SQLite database built once per KB content: the notes (with an FTS5
// table whose vocabulary gives each term's document frequency) and, for the whole-KB search, an
// impact list per term: the 64 notes the term adds most BM25 to, heaviest first. A whole-KB query
// reads only its informative terms' lists (a few hundred rows, whatever the KB's size), sums the
// parts per note and rescores the best candidates with the full BM25; a note that is in none of
// its terms' lists is not found, the price of a search that does not grow with the KB.
//
// Notes are also grouped (by the caller's NoteGroup, e.g. their subtask) and every group has
// impact lists of its own, so that examples() searches one group of the whole KB at the same
// constant cost, and a small group is never crowded out of the lists by a large one.
//
// What must hold: an index is used only if it was built completely from a KB file with the same
// content hash and the same group for every note (a fingerprint of the groups is kept in it), by
// this schema version (built in a temporary folder in one transaction, then renamed into place,
// see util/cache_publish.h), and SQLite's quick_check finds its pages intact; any other file at the
// index path is rebuilt, never trusted. A KB without one usable note is refused (InputError).
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kb/kb_file.h"

namespace drivevqa {

struct KbHit {
  KbEntry entry;
  double score = 0;    // BM25 (lower is better); 0 for entries taken without a text match
  std::string tier;    // "frame", "scene" or "all": where the candidates came from
};

class SqliteDb;

// A note's group (its subtask, for few-shot examples). Must be a pure function of the note: it is
// called for every note at every open (cheap: linear in the note), and an index whose notes were
// grouped otherwise is rebuilt. Every opener of one KB should pass the same function, or each
// open rebuilds the index the other built.
using NoteGroup = std::function<std::string(const KbEntry&)>;

class KbIndex {
 public:
  // Opens the index for `kb_file` at `index_path` (empty: <cache_dir>/kb/<content hash>.sqlite),
  // building it when missing or built from other content or groups. Throws InputError for a bad
  // KB file. `group_of` is used during the call only.
  static std::unique_ptr<KbIndex> open(const std::filesystem::path& kb_file, const std::filesystem::path& index_path,
                                       const std::filesystem::path& cache_dir, const NoteGroup& group_of);
  ~KbIndex();

  // The entry of this exact (scene, frame, whitespace-normalised question), if any.
  std::optional<KbEntry> exact(const std::string& scene, const std::string& frame, const std::string& question) const;

  // The top k notes: candidates from the same frame, else the same scene, else the whole KB (its
  // impact lists), ranked by BM25 over the question (weight 0.6) and question + answer (0.3) with object
  // references replaced by their camera names.
  std::vector<KbHit> retrieve(const std::string& scene, const std::string& frame, const std::string& question,
                              int k) const;

  // Up to k notes of group `group`, from any frame, most similar to `question` first (the same
  // BM25 as retrieve(), over the group's own impact lists of the question's 32 rarest terms, common
  // or not: a cost bounded on any KB; tier "all"). Left out: notes without
  // an answer, and every note of this very (scene, frame, whitespace-normalised question), which is
  // the question's answer rather than an example. When fewer notes share a term with the
  // question, the group's other notes follow in KB order (score 0), so fewer than k come back only
  // when the group has fewer answered notes besides the question's own.
  std::vector<KbHit> examples(const std::string& group, const std::string& scene, const std::string& frame,
                              const std::string& question, int k) const;

  bool rebuilt() const { return rebuilt_; }         // this open built the index
  double build_seconds() const { return build_seconds_; }
  size_t entries() const { return entries_; }
  size_t skipped() const { return skipped_; }
  size_t duplicates() const { return duplicates_; }  // notes repeating an earlier note's key
  const std::filesystem::path& path() const { return path_; }
  const std::string& content_hash() const { return content_hash_; }

 private:
  KbIndex() = default;
  std::filesystem::path path_;
  std::unique_ptr<SqliteDb> db_;  // read-only; KbIndex is not copyable
  bool rebuilt_ = false;
  size_t duplicates_ = 0;
  double build_seconds_ = 0;
  size_t entries_ = 0;
  size_t skipped_ = 0;
  std::string content_hash_;
  double avg_question_ = 1;          // mean tokens per note, question column
  double avg_question_answer_ = 1;   // and question + answer column
};

// The hint block the seed injects: header, numbered notes with short scene/frame tags, and the
// "use if relevant" line. Empty when there are no hits.
std::string kb_context_block(const std::vector<KbHit>& hits);

}  // namespace drivevqa
