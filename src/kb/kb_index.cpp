#include "kb/kb_index.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <cmath>
#include <set>
#include <tuple>
#include <unordered_map>

#include "kb/kb_impacts.h"
#include "util/cache_publish.h"
#include "util/error.h"
#include "util/interrupt.h"
#include "util/sqlite_statement.h"
#include "util/stopwatch.h"
#include "util/text.h"

namespace drivevqa {
namespace {

constexpr int kSchemaVersion = 5;  // 5: note groups and their impact lists

// Statements of this index: errors name the index.
class Statement : public SqliteStatement {
 public:
  Statement(sqlite3* db, const char* sql) : SqliteStatement(db, sql, ExitCode::kFailure, "knowledge base index") {}
};

SqliteDb open_db(const std::filesystem::path& path, int flags) {
  return SqliteDb(path, flags, ExitCode::kOutput, "knowledge base index");
}

// SQLite's own page check: a damaged index (a bad disk, a copy cut short) is rebuilt, not trusted
// because its meta table still says it is complete.
bool pages_intact(const std::filesystem::path& path) {
  bool ok = false;
  if (const auto db = SqliteDb::try_open(path, SQLITE_OPEN_READONLY)) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db->get(), "PRAGMA quick_check", -1, &stmt, nullptr) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(stmt, 0);
      ok = text && std::string(reinterpret_cast<const char*>(text)) == "ok";
    }
    sqlite3_finalize(stmt);
  }
  if (!ok) spdlog::warn("the knowledge base index {} is damaged: building it again", path.string());
  return ok;
}

// A value of the meta table of a complete index of this schema, or "" when the file is not one.
std::string recorded_meta(const std::filesystem::path& path, const char* key) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return "";
  const auto db = SqliteDb::try_open(path, SQLITE_OPEN_READONLY);
  if (!db) return "";
  std::string value;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db->get(), "SELECT value FROM meta WHERE key = ? AND "
                                    "(SELECT value FROM meta WHERE key = 'schema') = ?", -1, &stmt, nullptr) == SQLITE_OK) {
    sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int(stmt, 2, kSchemaVersion);
    if (sqlite3_step(stmt) == SQLITE_ROW) value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  }
  sqlite3_finalize(stmt);
  return value;
}

// Every note's group, named by the caller and numbered from 1 in order of first appearance.
struct NoteGroups {
  std::vector<std::string> names;   // names[g - 1]
  std::vector<int64_t> of_note;     // one per KB entry
  std::string fingerprint;          // of every note's group name, in KB order
};

NoteGroups group_notes(const KbFile& kb, const NoteGroup& group_of) {
  NoteGroups groups;
  std::unordered_map<std::string, int64_t> id_of;
  std::string all;
  for (const KbEntry& e : kb.entries) {
    const std::string name = group_of(e);
    const auto [it, added] = id_of.emplace(name, static_cast<int64_t>(groups.names.size() + 1));
    if (added) groups.names.push_back(name);
    groups.of_note.push_back(it->second);
    all += name;
    all += '\n';
  }
  groups.fingerprint = fingerprint(all);
  return groups;
}

void build(const KbFile& kb, const NoteGroups& groups, const std::filesystem::path& path) {
  const SqliteDb db = open_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  db.exec("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; BEGIN;");
  db.exec(
      "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
      "CREATE TABLE entries(id INTEGER PRIMARY KEY, scene TEXT, frame TEXT, question TEXT, answer TEXT, "
      "category TEXT, norm_question TEXT, grp INTEGER);"
      "CREATE TABLE groups(id INTEGER PRIMARY KEY, name TEXT UNIQUE);"
      "CREATE VIRTUAL TABLE notes USING fts5(question, question_answer, tokenize = 'unicode61');"
      "CREATE VIRTUAL TABLE notes_terms USING fts5vocab(notes, 'row');");
  Statement insert(db.get(), "INSERT INTO entries VALUES(?, ?, ?, ?, ?, ?, ?, ?)");
  Statement insert_text(db.get(), "INSERT INTO notes(rowid, question, question_answer) VALUES(?, ?, ?)");
  int64_t id = 0;
  for (const KbEntry& e : kb.entries) {
    if (++id % 1024 == 0) throw_if_interrupted();  // a big KB takes minutes: Ctrl-C stops it, nothing published
    insert.bind(1, id).bind(2, e.scene_token).bind(3, e.frame_token).bind(4, e.question).bind(5, e.answer)
        .bind(6, e.category).bind(7, normalise_question(e.question)).bind(8, groups.of_note[static_cast<size_t>(id - 1)]);
    insert.step();
    insert.reset();
    const std::string q = replace_object_refs(e.question);
    insert_text.bind(1, id).bind(2, q).bind(3, q + " " + replace_object_refs(e.answer));
    insert_text.step();
    insert_text.reset();
  }
  Statement insert_group(db.get(), "INSERT INTO groups VALUES(?, ?)");
  for (size_t g = 0; g < groups.names.size(); ++g) {
    insert_group.bind(1, static_cast<int64_t>(g + 1)).bind(2, groups.names[g]).step();
    insert_group.reset();
  }
  db.exec(
      "CREATE INDEX entries_key ON entries(scene, frame, norm_question);"
      "CREATE INDEX entries_frame ON entries(frame);"
      "CREATE INDEX entries_scene ON entries(scene);"
      "CREATE INDEX entries_group ON entries(grp, id);");
  // Document frequencies as a plain table (a B-tree lookup per query term) and the columns'
  // mean lengths: what BM25 needs besides a note's own text.
  db.exec(
      "CREATE TABLE terms(term TEXT PRIMARY KEY, df INTEGER) WITHOUT ROWID;"
      "INSERT INTO terms SELECT term, doc FROM notes_terms;");
  double avg_q = 0, avg_qa = 0;
  write_impacts(db, kb, groups.of_note, avg_q, avg_qa);
  Statement meta(db.get(), "INSERT INTO meta VALUES(?, ?)");
  for (const auto& [key, value] : {std::pair<std::string, std::string>{"avg_question", std::to_string(avg_q)},
                                   {"avg_question_answer", std::to_string(avg_qa)},
                                   {"schema", std::to_string(kSchemaVersion)},
                                   {"skipped", std::to_string(kb.skipped)},
                                   {"groups", groups.fingerprint},
                                   {"content_hash", kb.content_hash}}) {
    meta.bind(1, key).bind(2, value).step();
    meta.reset();
  }
  db.exec("COMMIT;");
}

struct QueryTerm {
  std::string token;
  int64_t df;
};

// The question's distinct tokens that occur in the KB, rarest first.
std::vector<QueryTerm> query_terms(sqlite3* db, const std::string& question) {
  std::set<std::string> seen;
  std::vector<QueryTerm> terms;
  Statement df(db, "SELECT df FROM terms WHERE term = ?");
  for (const std::string& t : kb_tokens(replace_object_refs(question))) {
    if (!seen.insert(t).second) continue;
    df.bind(1, t);
    if (df.step()) terms.push_back({t, df.integer(0)});
    df.reset();
  }
  std::sort(terms.begin(), terms.end(), [](const auto& a, const auto& b) { return a.df < b.df || (a.df == b.df && a.token < b.token); });
  return terms;
}

// bm25() of one note for the query terms, computed from its text; lower is better, as in FTS5.
double bm25(const std::vector<QueryTerm>& terms, int64_t notes, double avg_q, double avg_qa, const std::string& question,
            const std::string& answer) {
  const std::string q = replace_object_refs(question);
  const std::vector<std::string> q_tokens = kb_tokens(q), qa_tokens = kb_tokens(q + " " + replace_object_refs(answer));
  double score = 0;
  for (const QueryTerm& t : terms) {
    const auto tf_q = static_cast<double>(std::count(q_tokens.begin(), q_tokens.end(), t.token));
    const auto tf_qa = static_cast<double>(std::count(qa_tokens.begin(), qa_tokens.end(), t.token));
    score += term_weight(t.df, notes, tf_q, static_cast<double>(q_tokens.size()), avg_q, tf_qa,
                         static_cast<double>(qa_tokens.size()), avg_qa);
  }
  return -score;
}

KbEntry row_entry(const Statement& s, int first) {
  return {s.text(first), s.text(first + 1), s.text(first + 2), s.text(first + 3), s.text(first + 4)};
}

struct Scoring {
  int64_t notes = 0;
  double avg_q = 1, avg_qa = 1;
};

// Keeps a candidate note (given with its normalised question); null: every note.
using NoteFilter = std::function<bool(const KbEntry&, const std::string&)>;

// How many of a question's rarest terms a group search reads the lists of (each list holds at most
// kImpactListLength notes: the cost is bounded whatever the question's length).
constexpr size_t kGroupSearchTerms = 32;

// The whole-KB search over impact list `list` (0: every note, g >= 1: group g's notes): candidates
// from the informative terms' lists (the notes each term adds most BM25 to), ranked by the sum of
// those parts; the best that `keep` accepts are rescored with the full BM25, and the k best of
// those come back with their note ids, best first (ties: the earlier note). The whole KB's search reads the terms in
// at most a tenth of the notes (and the rarest); a group's reads its kGroupSearchTerms rarest,
// however common: a group's notes share its template's words, which the whole KB finds common.
std::vector<std::pair<int64_t, KbHit>> search_impacts(sqlite3* db, const std::vector<QueryTerm>& terms,
                                                      const Scoring& scoring, int64_t list, int k, const NoteFilter& keep) {
  std::unordered_map<int64_t, double> partial;
  Statement postings(db, "SELECT id, weight FROM impacts WHERE grp = ? AND term = ? ORDER BY weight, id");
  for (size_t i = 0; i < terms.size(); ++i) {
    // Whole KB: terms in more than a tenth of the notes weigh next to nothing.
    if (list == 0 ? i > 0 && terms[i].df * 10 > scoring.notes : i >= kGroupSearchTerms) break;
    postings.bind(1, list).bind(2, terms[i].token);
    while (postings.step()) partial[postings.integer(0)] += postings.real(1);
    postings.reset();
  }
  std::vector<std::pair<double, int64_t>> candidates;
  for (const auto& [id, weight] : partial) candidates.emplace_back(weight, id);
  std::sort(candidates.begin(), candidates.end());
  const size_t rescored = static_cast<size_t>(std::max(4 * k, 32));
  Statement entry(db, "SELECT scene, frame, question, answer, category, norm_question FROM entries WHERE id = ?");
  std::vector<std::pair<int64_t, KbHit>> ranked;
  for (size_t i = 0; i < candidates.size() && ranked.size() < rescored; ++i) {
    entry.bind(1, candidates[i].second);
    if (entry.step()) {
      KbEntry e = row_entry(entry, 0);
      if (!keep || keep(e, entry.text(5))) {
        const double score = bm25(terms, scoring.notes, scoring.avg_q, scoring.avg_qa, e.question, e.answer);
        ranked.push_back({candidates[i].second, {std::move(e), score, "all"}});
      }
    }
    entry.reset();
  }
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    return a.second.score < b.second.score || (a.second.score == b.second.score && a.first < b.first);
  });
  if (static_cast<int>(ranked.size()) > k) ranked.resize(static_cast<size_t>(k));
  return ranked;
}

// Notes whose (scene, frame, normalised question) an earlier note already has.
size_t count_duplicate_keys(const KbFile& kb) {
  std::set<std::tuple<std::string, std::string, std::string>> seen;
  size_t duplicates = 0;
  for (const KbEntry& e : kb.entries) {
    if (!seen.emplace(e.scene_token, e.frame_token, normalise_question(e.question)).second) ++duplicates;
  }
  return duplicates;
}

}  // namespace

std::unique_ptr<KbIndex> KbIndex::open(const std::filesystem::path& kb_file, const std::filesystem::path& index_path,
                                       const std::filesystem::path& cache_dir, const NoteGroup& group_of) {
  const KbFile kb = read_kb_file(kb_file);
  if (kb.entries.empty()) {
    throw InputError(kb_file.string() + ": no usable notes (" + std::to_string(kb.skipped) +
                     " entries skipped: no question); fix the file or run with --rag_mode off");
  }
  std::unique_ptr<KbIndex> index(new KbIndex());
  index->duplicates_ = count_duplicate_keys(kb);
  if (index->duplicates_ > 0) {
    spdlog::warn("{}: {} notes repeat the scene, frame and question of an earlier one; exact answers take the first",
                 kb_file.string(), index->duplicates_);
  }
  index->path_ = index_path.empty() ? cache_dir / "kb" / (kb.content_hash + ".sqlite") : index_path;
  std::error_code ec;
  std::filesystem::create_directories(index->path_.parent_path(), ec);
  const auto start = std::chrono::steady_clock::now();
  const NoteGroups groups = group_notes(kb, group_of);
  // Built in a temporary folder and renamed into place once; concurrent runs wait and reuse it.
  const bool built = publish_cached_file(index->path_, [&](const std::filesystem::path& p) {
    return recorded_meta(p, "content_hash") == kb.content_hash && recorded_meta(p, "groups") == groups.fingerprint &&
           pages_intact(p);
  }, [&](const std::filesystem::path& tmp) { build(kb, groups, tmp); });
  if (built) {
    index->rebuilt_ = true;
    index->build_seconds_ = seconds_since(start);
    spdlog::info("built the knowledge base index {} ({} notes, {} skipped) in {:.2f} s", index->path_.string(),
                 kb.entries.size(), kb.skipped, index->build_seconds_);
  } else {
    spdlog::info("using the knowledge base index {}", index->path_.string());
  }
  index->entries_ = kb.entries.size();
  index->content_hash_ = kb.content_hash;
  index->skipped_ = kb.skipped;
  index->db_ = std::make_unique<SqliteDb>(index->path_, SQLITE_OPEN_READONLY, ExitCode::kOutput, "knowledge base index");
  Statement avg(index->db_->get(), "SELECT key, value FROM meta WHERE key IN ('avg_question', 'avg_question_answer')");
  while (avg.step()) (avg.text(0) == "avg_question" ? index->avg_question_ : index->avg_question_answer_) = std::stod(avg.text(1));
  return index;
}

KbIndex::~KbIndex() = default;

std::optional<KbEntry> KbIndex::exact(const std::string& scene, const std::string& frame, const std::string& question) const {
  Statement s(db_->get(), "SELECT scene, frame, question, answer, category FROM entries "
                   "WHERE scene = ? AND frame = ? AND norm_question = ? ORDER BY id LIMIT 1");
  s.bind(1, scene).bind(2, frame).bind(3, normalise_question(question));
  if (!s.step()) return std::nullopt;
  return row_entry(s, 0);
}

std::vector<KbHit> KbIndex::retrieve(const std::string& scene, const std::string& frame, const std::string& question,
                                     int k) const {
  std::vector<KbHit> hits;
  if (k <= 0) return hits;
  const std::vector<QueryTerm> terms = query_terms(db_->get(), question);
  const int64_t notes = static_cast<int64_t>(entries_);
  // The narrowest non-empty tier, as the seed's same-frame / same-scene preference. A frame or a
  // scene holds few notes: each is scored directly, with the same BM25 as the whole-KB search.
  for (const auto& [tier, column, value] : {std::tuple{"frame", "frame", &frame}, std::tuple{"scene", "scene", &scene}}) {
    if (value->empty()) continue;
    Statement members(db_->get(), (std::string("SELECT scene, frame, question, answer, category FROM entries WHERE ") + column +
                            " = ? ORDER BY id").c_str());
    members.bind(1, *value);
    std::vector<KbHit> ranked;
    while (members.step()) {
      KbEntry e = row_entry(members, 0);
      const double score = bm25(terms, notes, avg_question_, avg_question_answer_, e.question, e.answer);
      ranked.push_back({std::move(e), score, tier});
    }
    if (ranked.empty()) continue;
    std::stable_sort(ranked.begin(), ranked.end(), [](const KbHit& a, const KbHit& b) { return a.score < b.score; });
    if (static_cast<int>(ranked.size()) > k) ranked.resize(static_cast<size_t>(k));
    return ranked;
  }
  for (auto& [id, hit] : search_impacts(db_->get(), terms, {notes, avg_question_, avg_question_answer_}, 0, k, nullptr)) {
    hits.push_back(std::move(hit));
  }
  return hits;
}

std::vector<KbHit> KbIndex::examples(const std::string& group, const std::string& scene, const std::string& frame,
                                     const std::string& question, int k) const {
  if (k <= 0) return {};
  Statement group_id(db_->get(), "SELECT id FROM groups WHERE name = ?");
  group_id.bind(1, group);
  if (!group_id.step()) return {};  // no note of this group
  const int64_t list = group_id.integer(0);
  const std::string own = normalise_question(question);
  const auto example = [&](const KbEntry& e, const std::string& norm_question) {
    return !e.answer.empty() && !(e.scene_token == scene && e.frame_token == frame && norm_question == own);
  };
  const Scoring scoring{static_cast<int64_t>(entries_), avg_question_, avg_question_answer_};
  std::vector<KbHit> hits;
  std::set<int64_t> taken;
  for (auto& [id, hit] : search_impacts(db_->get(), query_terms(db_->get(), question), scoring, list, k, example)) {
    taken.insert(id);
    hits.push_back(std::move(hit));
  }
  if (static_cast<int>(hits.size()) >= k) return hits;
  // Fewer notes share a term with the question than asked: the group's others, in KB order.
  Statement members(db_->get(), "SELECT scene, frame, question, answer, category, norm_question, id FROM entries "
                                "WHERE grp = ? ORDER BY id");
  members.bind(1, list);
  while (static_cast<int>(hits.size()) < k && members.step()) {
    KbEntry e = row_entry(members, 0);
    if (example(e, members.text(5)) && !taken.count(members.integer(6))) hits.push_back({std::move(e), 0, "all"});
  }
  return hits;
}

std::string kb_context_block(const std::vector<KbHit>& hits) {
  if (hits.empty()) return "";
  std::string block = "Context (human-verified notes):\n";
  int n = 0;
  for (const KbHit& h : hits) {
    const std::string& note = h.entry.answer.empty() ? h.entry.question : h.entry.answer;
    block += std::to_string(++n) + ". " + normalise_question(note) + " [scene=" + h.entry.scene_token.substr(0, 8) +
             ", frame=" + h.entry.frame_token.substr(0, 8) + "]\n";
  }
  block += "Use these notes if they are relevant to the question.\n";
  return block;
}

}  // namespace drivevqa
