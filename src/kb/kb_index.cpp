#include "kb/kb_index.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <algorithm>
#include <cmath>
#include <set>
#include <tuple>
#include <unordered_map>

#include "util/cache_publish.h"
#include "util/error.h"
#include "util/interrupt.h"
#include "util/sqlite_statement.h"
#include "util/stopwatch.h"

namespace drivevqa {
namespace {

constexpr int kSchemaVersion = 4;

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

// The content hash recorded in a complete index, or "" when the file is not one.
std::string recorded_hash(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return "";
  const auto db = SqliteDb::try_open(path, SQLITE_OPEN_READONLY);
  if (!db) return "";
  std::string hash;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db->get(), "SELECT value FROM meta WHERE key = 'content_hash' AND "
                                    "(SELECT value FROM meta WHERE key = 'schema') = ?", -1, &stmt, nullptr) == SQLITE_OK) {
    sqlite3_bind_int(stmt, 1, kSchemaVersion);
    if (sqlite3_step(stmt) == SQLITE_ROW) hash = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  }
  sqlite3_finalize(stmt);
  return hash;
}

// How many notes each term's impact list keeps (its best by BM25 contribution).
constexpr size_t kImpactListLength = 64;

double term_weight(int64_t df, int64_t notes, double tf_q, double q_len, double avg_q, double tf_qa, double qa_len,
                   double avg_qa);

// The whole-KB search's postings: for every term, the kImpactListLength notes it adds most BM25 to
// (table impacts, best first), and the columns' mean lengths.
void write_impacts(const SqliteDb& db, const KbFile& kb, double& avg_q, double& avg_qa) {
  struct Note {
    std::vector<uint32_t> q, qa;  // token ids
  };
  std::unordered_map<std::string, uint32_t> id_of;
  std::vector<const std::string*> term_of;
  const auto intern = [&](const std::vector<std::string>& tokens) {
    std::vector<uint32_t> ids;
    ids.reserve(tokens.size());
    for (const std::string& t : tokens) {
      const auto [it, added] = id_of.emplace(t, static_cast<uint32_t>(term_of.size()));
      if (added) term_of.push_back(&it->first);
      ids.push_back(it->second);
    }
    return ids;
  };
  std::vector<Note> notes;
  notes.reserve(kb.entries.size());
  double q_total = 0, qa_total = 0;
  for (const KbEntry& e : kb.entries) {
    const std::string q = replace_object_refs(e.question);
    Note note{intern(kb_tokens(q)), intern(kb_tokens(q + " " + replace_object_refs(e.answer)))};
    q_total += static_cast<double>(note.q.size());
    qa_total += static_cast<double>(note.qa.size());
    notes.push_back(std::move(note));
  }
  const int64_t n = static_cast<int64_t>(notes.size());
  avg_q = q_total / std::max<double>(1, static_cast<double>(n));
  avg_qa = qa_total / std::max<double>(1, static_cast<double>(n));
  // Document frequency: notes holding the term in either column (as FTS5's vocabulary counts).
  std::vector<int64_t> df(term_of.size(), 0);
  std::vector<uint32_t> seen_in(term_of.size(), UINT32_MAX);
  for (size_t i = 0; i < notes.size(); ++i) {
    for (uint32_t t : notes[i].qa) {
      if (seen_in[t] != i) ++df[t];
      seen_in[t] = static_cast<uint32_t>(i);
    }
  }
  // Per term a min-heap of (weight, note) of at most kImpactListLength entries.
  using Posting = std::pair<double, int64_t>;
  std::vector<std::vector<Posting>> best(term_of.size());
  std::unordered_map<uint32_t, std::pair<double, double>> tf;  // term -> (tf in question, tf in question + answer)
  for (size_t i = 0; i < notes.size(); ++i) {
    tf.clear();
    for (uint32_t t : notes[i].q) tf[t].first += 1;
    for (uint32_t t : notes[i].qa) tf[t].second += 1;
    for (const auto& [t, counts] : tf) {
      const double w = term_weight(df[t], n, counts.first, static_cast<double>(notes[i].q.size()), avg_q, counts.second,
                                   static_cast<double>(notes[i].qa.size()), avg_qa);
      std::vector<Posting>& heap = best[t];
      const Posting p{w, -static_cast<int64_t>(i + 1)};  // ties: the earlier note wins
      if (heap.size() < kImpactListLength) {
        heap.push_back(p);
        std::push_heap(heap.begin(), heap.end(), std::greater<>());
      } else if (p > heap.front()) {
        std::pop_heap(heap.begin(), heap.end(), std::greater<>());
        heap.back() = p;
        std::push_heap(heap.begin(), heap.end(), std::greater<>());
      }
    }
  }
  db.exec("CREATE TABLE impacts(term TEXT, weight REAL, id INTEGER, PRIMARY KEY(term, weight, id)) WITHOUT ROWID;");
  Statement insert(db.get(), "INSERT INTO impacts VALUES(?, ?, ?)");
  for (size_t t = 0; t < best.size(); ++t) {
    for (const Posting& p : best[t]) {
      // Stored negated, so that an index range scan yields the heaviest first.
      insert.bind(1, *term_of[t]).bind_real(2, -p.first).bind(3, -p.second);
      insert.step();
      insert.reset();
    }
  }
}

void build(const KbFile& kb, const std::filesystem::path& path) {
  const SqliteDb db = open_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  db.exec("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; BEGIN;");
  db.exec(
      "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
      "CREATE TABLE entries(id INTEGER PRIMARY KEY, scene TEXT, frame TEXT, question TEXT, answer TEXT, "
      "category TEXT, norm_question TEXT);"
      "CREATE VIRTUAL TABLE notes USING fts5(question, question_answer, tokenize = 'unicode61');"
      "CREATE VIRTUAL TABLE notes_terms USING fts5vocab(notes, 'row');");
  Statement insert(db.get(), "INSERT INTO entries VALUES(?, ?, ?, ?, ?, ?, ?)");
  Statement insert_text(db.get(), "INSERT INTO notes(rowid, question, question_answer) VALUES(?, ?, ?)");
  int64_t id = 0;
  for (const KbEntry& e : kb.entries) {
    if (++id % 1024 == 0) throw_if_interrupted();  // a big KB takes minutes: Ctrl-C stops it, nothing published
    insert.bind(1, id).bind(2, e.scene_token).bind(3, e.frame_token).bind(4, e.question).bind(5, e.answer)
        .bind(6, e.category).bind(7, normalise_question(e.question));
    insert.step();
    insert.reset();
    const std::string q = replace_object_refs(e.question);
    insert_text.bind(1, id).bind(2, q).bind(3, q + " " + replace_object_refs(e.answer));
    insert_text.step();
    insert_text.reset();
  }
  db.exec(
      "CREATE INDEX entries_key ON entries(scene, frame, norm_question);"
      "CREATE INDEX entries_frame ON entries(frame);"
      "CREATE INDEX entries_scene ON entries(scene);");
  // Document frequencies as a plain table (a B-tree lookup per query term) and the columns'
  // mean lengths: what BM25 needs besides a note's own text.
  db.exec(
      "CREATE TABLE terms(term TEXT PRIMARY KEY, df INTEGER) WITHOUT ROWID;"
      "INSERT INTO terms SELECT term, doc FROM notes_terms;");
  Statement meta(db.get(), "INSERT INTO meta VALUES(?, ?)");
  double avg_q = 0, avg_qa = 0;
  write_impacts(db, kb, avg_q, avg_qa);
  meta.bind(1, std::string("avg_question")).bind(2, std::to_string(avg_q)).step();
  meta.reset();
  meta.bind(1, std::string("avg_question_answer")).bind(2, std::to_string(avg_qa)).step();
  meta.reset();
  meta.bind(1, std::string("schema")).bind(2, std::to_string(kSchemaVersion)).step();
  meta.reset();
  meta.bind(1, std::string("skipped")).bind(2, std::to_string(kb.skipped)).step();
  meta.reset();
  meta.bind(1, std::string("content_hash")).bind(2, kb.content_hash).step();
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

// One query term's part of FTS5's bm25() (k1 = 1.2, b = 0.75, column weights 0.6 and 0.3) for a
// note whose question has q_len tokens (tf_q of them this term) and question + answer qa_len (tf_qa).
double term_weight(int64_t df, int64_t notes, double tf_q, double q_len, double avg_q, double tf_qa, double qa_len,
                   double avg_qa) {
  double idf = std::log((static_cast<double>(notes) - static_cast<double>(df) + 0.5) / (static_cast<double>(df) + 0.5));
  if (idf <= 0) idf = 1e-6;
  double sum = 0;
  for (const auto& [tf, len, avg, weight] : {std::tuple{tf_q, q_len, avg_q, 0.6}, std::tuple{tf_qa, qa_len, avg_qa, 0.3}}) {
    if (tf == 0) continue;
    const double norm = 1.2 * (1 - 0.75 + 0.75 * len / std::max(avg, 1e-9));
    sum += weight * tf * 2.2 / (tf + norm);
  }
  return idf * sum;
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
                                       const std::filesystem::path& cache_dir) {
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
  // Built in a temporary folder and renamed into place once; concurrent runs wait and reuse it.
  const bool built = publish_cached_file(index->path_, [&](const std::filesystem::path& p) {
    return recorded_hash(p) == kb.content_hash && pages_intact(p);
  }, [&](const std::filesystem::path& tmp) { build(kb, tmp); });
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
  // The whole KB: candidates from the informative terms' impact lists (the notes each term adds
  // most BM25 to), ranked by the sum of those parts; the best are rescored with the full BM25.
  std::unordered_map<int64_t, double> partial;
  Statement postings(db_->get(), "SELECT id, weight FROM impacts WHERE term = ? ORDER BY weight, id");
  for (size_t i = 0; i < terms.size(); ++i) {
    if (i > 0 && terms[i].df * 10 > notes) break;  // terms in more than a tenth of the notes weigh next to nothing
    postings.bind(1, terms[i].token);
    while (postings.step()) partial[postings.integer(0)] += postings.real(1);
    postings.reset();
  }
  std::vector<std::pair<double, int64_t>> candidates;
  for (const auto& [id, weight] : partial) candidates.emplace_back(weight, id);
  const size_t rescored = std::min(candidates.size(), static_cast<size_t>(std::max(4 * k, 32)));
  std::partial_sort(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(rescored), candidates.end());
  Statement entry(db_->get(), "SELECT scene, frame, question, answer, category FROM entries WHERE id = ?");
  std::vector<std::pair<int64_t, KbHit>> ranked;
  for (size_t i = 0; i < rescored; ++i) {
    entry.bind(1, candidates[i].second);
    if (entry.step()) {
      KbEntry e = row_entry(entry, 0);
      const double score = bm25(terms, notes, avg_question_, avg_question_answer_, e.question, e.answer);
      ranked.push_back({candidates[i].second, {std::move(e), score, "all"}});
    }
    entry.reset();
  }
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    return a.second.score < b.second.score || (a.second.score == b.second.score && a.first < b.first);
  });
  for (auto& [id, hit] : ranked) {
    if (static_cast<int>(hits.size()) >= k) break;
    hits.push_back(std::move(hit));
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
