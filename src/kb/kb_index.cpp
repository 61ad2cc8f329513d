#include "kb/kb_index.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <algorithm>
#include <cmath>
#include <set>
#include <tuple>

#include "util/error.h"

namespace drivevqa {
namespace {

constexpr int kSchemaVersion = 3;

class Statement {
 public:
  Statement(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) {
      throw Error(ExitCode::kFailure, std::string("knowledge base index: ") + sqlite3_errmsg(db));
    }
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement& bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw Error(ExitCode::kFailure, std::string("knowledge base index: ") + sqlite3_errmsg(sqlite3_db_handle(stmt_)));
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  std::string text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_, col))) : "";
  }
  int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  double real(int col) const { return sqlite3_column_double(stmt_, col); }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

void exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string message = err ? err : "unknown error";
    sqlite3_free(err);
    throw Error(ExitCode::kFailure, "knowledge base index: " + message);
  }
}

sqlite3* open_db(const std::filesystem::path& path, int flags) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    const std::string message = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw OutputError(path.string() + ": cannot open the knowledge base index (" + message + ")");
  }
  return db;
}

// The content hash recorded in a complete index, or "" when the file is not one.
std::string recorded_hash(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return "";
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return "";
  }
  std::string hash;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'content_hash' AND "
                             "(SELECT value FROM meta WHERE key = 'schema') = ?", -1, &stmt, nullptr) == SQLITE_OK) {
    sqlite3_bind_int(stmt, 1, kSchemaVersion);
    if (sqlite3_step(stmt) == SQLITE_ROW) hash = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return hash;
}

void build(const KbFile& kb, const std::filesystem::path& path) {
  sqlite3* db = open_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  try {
    exec(db, "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; BEGIN;");
    exec(db,
         "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
         "CREATE TABLE entries(id INTEGER PRIMARY KEY, scene TEXT, frame TEXT, question TEXT, answer TEXT, "
         "category TEXT, norm_question TEXT);"
         "CREATE VIRTUAL TABLE notes USING fts5(question, question_answer, tokenize = 'unicode61');"
         "CREATE VIRTUAL TABLE notes_terms USING fts5vocab(notes, 'row');");
    Statement insert(db, "INSERT INTO entries VALUES(?, ?, ?, ?, ?, ?, ?)");
    Statement insert_text(db, "INSERT INTO notes(rowid, question, question_answer) VALUES(?, ?, ?)");
    int64_t id = 0;
    for (const KbEntry& e : kb.entries) {
      ++id;
      insert.bind(1, id).bind(2, e.scene_token).bind(3, e.frame_token).bind(4, e.question).bind(5, e.answer)
          .bind(6, e.category).bind(7, normalise_question(e.question));
      insert.step();
      insert.reset();
      const std::string q = replace_object_refs(e.question);
      insert_text.bind(1, id).bind(2, q).bind(3, q + " " + replace_object_refs(e.answer));
      insert_text.step();
      insert_text.reset();
    }
    exec(db,
         "CREATE INDEX entries_key ON entries(scene, frame, norm_question);"
         "CREATE INDEX entries_frame ON entries(frame);"
         "CREATE INDEX entries_scene ON entries(scene);");
    // Document frequencies as a plain table (a B-tree lookup per query term) and the columns'
    // mean lengths: what BM25 needs besides a note's own text.
    exec(db,
         "CREATE TABLE terms(term TEXT PRIMARY KEY, df INTEGER) WITHOUT ROWID;"
         "INSERT INTO terms SELECT term, doc FROM notes_terms;");
    Statement meta(db, "INSERT INTO meta VALUES(?, ?)");
    double q_tokens = 0, qa_tokens = 0;
    for (const KbEntry& e : kb.entries) {
      const std::string q = replace_object_refs(e.question);
      q_tokens += static_cast<double>(kb_tokens(q).size());
      qa_tokens += static_cast<double>(kb_tokens(q + " " + replace_object_refs(e.answer)).size());
    }
    const double n = std::max<double>(1, static_cast<double>(kb.entries.size()));
    meta.bind(1, std::string("avg_question")).bind(2, std::to_string(q_tokens / n)).step();
    meta.reset();
    meta.bind(1, std::string("avg_question_answer")).bind(2, std::to_string(qa_tokens / n)).step();
    meta.reset();
    meta.bind(1, std::string("schema")).bind(2, std::to_string(kSchemaVersion)).step();
    meta.reset();
    meta.bind(1, std::string("skipped")).bind(2, std::to_string(kb.skipped)).step();
    meta.reset();
    meta.bind(1, std::string("content_hash")).bind(2, kb.content_hash).step();
    exec(db, "COMMIT;");
  } catch (...) {
    sqlite3_close(db);
    throw;
  }
  sqlite3_close(db);
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

// An FTS5 query for the whole-KB search over the question's informative terms, joined by `op`.
// Terms found in more than a tenth of the notes are left out (the rarest term always stays): their
// BM25 weight is close to nothing, but matching them would make every query touch most of the index.
std::string match_query(const std::vector<QueryTerm>& terms, int64_t notes, const char* op) {
  std::string q;
  for (size_t i = 0; i < terms.size(); ++i) {
    if (i > 0 && terms[i].df * 10 > notes) break;
    q += (q.empty() ? "\"" : std::string(" ") + op + " \"") + terms[i].token + "\"";
  }
  return q;
}

// FTS5's bm25() (k1 = 1.2, b = 0.75, column weights 0.6 and 0.3), computed for one note from its
// text and the index's statistics; lower is better, as in FTS5.
double bm25(const std::vector<QueryTerm>& terms, int64_t notes, double avg_q, double avg_qa, const std::string& question,
            const std::string& answer) {
  const std::string q = replace_object_refs(question);
  const std::vector<std::string> q_tokens = kb_tokens(q), qa_tokens = kb_tokens(q + " " + replace_object_refs(answer));
  double score = 0;
  for (const QueryTerm& t : terms) {
    double idf = std::log((static_cast<double>(notes) - t.df + 0.5) / (t.df + 0.5));
    if (idf <= 0) idf = 1e-6;
    double sum = 0;
    for (const auto& [tokens, avg, weight] : {std::tuple{&q_tokens, avg_q, 0.6}, std::tuple{&qa_tokens, avg_qa, 0.3}}) {
      const double tf = static_cast<double>(std::count(tokens->begin(), tokens->end(), t.token));
      if (tf == 0) continue;
      const double norm = 1.2 * (1 - 0.75 + 0.75 * static_cast<double>(tokens->size()) / std::max(avg, 1e-9));
      sum += weight * tf * 2.2 / (tf + norm);
    }
    score += idf * sum;
  }
  return -score;
}

KbEntry row_entry(const Statement& s, int first) {
  return {s.text(first), s.text(first + 1), s.text(first + 2), s.text(first + 3), s.text(first + 4)};
}

}  // namespace

std::unique_ptr<KbIndex> KbIndex::open(const std::filesystem::path& kb_file, const std::filesystem::path& index_path,
                                       const std::filesystem::path& cache_dir) {
  const KbFile kb = read_kb_file(kb_file);
  std::unique_ptr<KbIndex> index(new KbIndex());
  index->path_ = index_path.empty() ? cache_dir / "kb" / (kb.content_hash + ".sqlite") : index_path;
  std::error_code ec;
  std::filesystem::create_directories(index->path_.parent_path(), ec);
  if (recorded_hash(index->path_) != kb.content_hash) {
    const auto start = std::chrono::steady_clock::now();
    const std::filesystem::path tmp = index->path_.string() + ".building-" + std::to_string(::getpid());
    std::filesystem::remove(tmp, ec);
    try {
      build(kb, tmp);
    } catch (...) {
      std::filesystem::remove(tmp, ec);
      throw;
    }
    std::filesystem::rename(tmp, index->path_, ec);
    if (ec) throw OutputError(index->path_.string() + ": cannot move the built index into place (" + ec.message() + ")");
    index->rebuilt_ = true;
    index->build_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    spdlog::info("built the knowledge base index {} ({} notes, {} skipped) in {:.2f} s", index->path_.string(),
                 kb.entries.size(), kb.skipped, index->build_seconds_);
  } else {
    spdlog::info("using the knowledge base index {}", index->path_.string());
  }
  index->entries_ = kb.entries.size();
  index->content_hash_ = kb.content_hash;
  index->skipped_ = kb.skipped;
  index->db_ = open_db(index->path_, SQLITE_OPEN_READONLY);
  Statement avg(index->db_, "SELECT key, value FROM meta WHERE key IN ('avg_question', 'avg_question_answer')");
  while (avg.step()) (avg.text(0) == "avg_question" ? index->avg_question_ : index->avg_question_answer_) = std::stod(avg.text(1));
  return index;
}

KbIndex::~KbIndex() { sqlite3_close(db_); }

std::optional<KbEntry> KbIndex::exact(const std::string& scene, const std::string& frame, const std::string& question) const {
  Statement s(db_, "SELECT scene, frame, question, answer, category FROM entries "
                   "WHERE scene = ? AND frame = ? AND norm_question = ? ORDER BY id LIMIT 1");
  s.bind(1, scene).bind(2, frame).bind(3, normalise_question(question));
  if (!s.step()) return std::nullopt;
  return row_entry(s, 0);
}

std::vector<KbHit> KbIndex::retrieve(const std::string& scene, const std::string& frame, const std::string& question,
                                     int k) const {
  std::vector<KbHit> hits;
  if (k <= 0) return hits;
  const std::vector<QueryTerm> terms = query_terms(db_, question);
  const int64_t notes = static_cast<int64_t>(entries_);
  // The narrowest non-empty tier, as the seed's same-frame / same-scene preference. A frame or a
  // scene holds few notes: each is scored directly, with the same BM25 as the whole-KB search.
  for (const auto& [tier, column, value] : {std::tuple{"frame", "frame", &frame}, std::tuple{"scene", "scene", &scene}}) {
    if (value->empty()) continue;
    Statement members(db_, (std::string("SELECT scene, frame, question, answer, category FROM entries WHERE ") + column +
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
  // Notes holding every informative term first (few, and the best by BM25 as a rule); any of them
  // only when those are fewer than k.
  for (const char* op : {"AND", "OR"}) {
    const std::string query = match_query(terms, notes, op);
    if (query.empty()) return hits;
    hits.clear();
    Statement s(db_, "SELECT e.scene, e.frame, e.question, e.answer, e.category, m.score FROM "
                     "(SELECT rowid AS id, rank AS score FROM notes WHERE notes MATCH ?1 AND rank MATCH 'bm25(0.6, 0.3)' "
                     "ORDER BY rank LIMIT ?2) m JOIN entries e ON e.id = m.id ORDER BY m.score, e.id");
    s.bind(1, query).bind(2, static_cast<int64_t>(k));
    while (s.step()) hits.push_back({row_entry(s, 0), s.real(5), "all"});
    if (static_cast<int>(hits.size()) >= k) break;
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
