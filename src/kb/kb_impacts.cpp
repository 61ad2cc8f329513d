#include "kb/kb_impacts.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "util/interrupt.h"

namespace drivevqa {

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

namespace {

struct Note {
  std::vector<uint32_t> q, qa;  // token ids
};

// Every note's tokens as ids into `term_of`, and the columns' mean lengths.
std::vector<Note> tokenised_notes(const KbFile& kb, std::vector<const std::string*>& term_of,
                                  std::unordered_map<std::string, uint32_t>& id_of, double& avg_q, double& avg_qa) {
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
  const double n = std::max<double>(1, static_cast<double>(notes.size()));
  avg_q = q_total / n;
  avg_qa = qa_total / n;
  return notes;
}

}  // namespace

void write_impacts(const SqliteDb& db, const KbFile& kb, const std::vector<int64_t>& note_group, double& avg_q,
                   double& avg_qa) {
  std::unordered_map<std::string, uint32_t> id_of;
  std::vector<const std::string*> term_of;
  const std::vector<Note> notes = tokenised_notes(kb, term_of, id_of, avg_q, avg_qa);
  const int64_t n = static_cast<int64_t>(notes.size());
  const size_t terms = term_of.size();
  // Document frequency: notes holding the term in either column (as FTS5's vocabulary counts).
  std::vector<int64_t> df(terms, 0);
  std::vector<uint32_t> seen_in(terms, UINT32_MAX);
  for (size_t i = 0; i < notes.size(); ++i) {
    for (uint32_t t : notes[i].qa) {
      if (seen_in[t] != i) ++df[t];
      seen_in[t] = static_cast<uint32_t>(i);
    }
  }
  // Per list (0: the whole KB, g: group g) and term a min-heap of (weight, note) of at most
  // kImpactListLength entries, at best[list * terms + term].
  const size_t lists = 1 + static_cast<size_t>(note_group.empty() ? 0 : *std::max_element(note_group.begin(), note_group.end()));
  using Posting = std::pair<double, int64_t>;
  std::vector<std::vector<Posting>> best(lists * terms);
  const auto offer = [](std::vector<Posting>& heap, const Posting& p) {
    if (heap.size() < kImpactListLength) {
      heap.push_back(p);
      std::push_heap(heap.begin(), heap.end(), std::greater<>());
    } else if (p > heap.front()) {
      std::pop_heap(heap.begin(), heap.end(), std::greater<>());
      heap.back() = p;
      std::push_heap(heap.begin(), heap.end(), std::greater<>());
    }
  };
  std::unordered_map<uint32_t, std::pair<double, double>> tf;  // term -> (tf in question, tf in question + answer)
  for (size_t i = 0; i < notes.size(); ++i) {
    if (i % 4096 == 0) throw_if_interrupted();
    tf.clear();
    for (uint32_t t : notes[i].q) tf[t].first += 1;
    for (uint32_t t : notes[i].qa) tf[t].second += 1;
    const size_t group_list = static_cast<size_t>(note_group[i]) * terms;
    for (const auto& [t, counts] : tf) {
      const double w = term_weight(df[t], n, counts.first, static_cast<double>(notes[i].q.size()), avg_q, counts.second,
                                   static_cast<double>(notes[i].qa.size()), avg_qa);
      const Posting p{w, -static_cast<int64_t>(i + 1)};  // ties: the earlier note wins
      offer(best[t], p);
      offer(best[group_list + t], p);
    }
  }
  db.exec("CREATE TABLE impacts(grp INTEGER, term TEXT, weight REAL, id INTEGER, PRIMARY KEY(grp, term, weight, id)) "
          "WITHOUT ROWID;");
  SqliteStatement insert(db.get(), "INSERT INTO impacts VALUES(?, ?, ?, ?)", ExitCode::kFailure, "knowledge base index");
  for (size_t list = 0; list < lists; ++list) {
    for (size_t t = 0; t < terms; ++t) {
      for (const Posting& p : best[list * terms + t]) {
        insert.bind(1, static_cast<int64_t>(list)).bind(2, *term_of[t]).bind_real(3, -p.first).bind(4, -p.second);
        insert.step();
        insert.reset();
      }
    }
  }
}

}  // namespace drivevqa
