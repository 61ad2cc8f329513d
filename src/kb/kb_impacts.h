// The impact lists of the knowledge base index (kb_index.h), and the BM25 term weight they and the
// rescoring share. Internal to kb/.
//
// Table impacts(grp, term, weight, id): for list 0 (the whole KB) and for each note group g >= 1,
// per term, the kImpactListLength notes of that list the term adds most BM25 to, stored with the
// weight negated so that an index range scan yields the heaviest first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kb/kb_file.h"
#include "util/sqlite_statement.h"

namespace drivevqa {

// How many notes each term's impact list keeps (its best by BM25 contribution).
inline constexpr size_t kImpactListLength = 64;

// One query term's part of FTS5's bm25() (k1 = 1.2, b = 0.75, column weights 0.6 and 0.3) for a
// note whose question has q_len tokens (tf_q of them this term) and question + answer qa_len (tf_qa).
double term_weight(int64_t df, int64_t notes, double tf_q, double q_len, double avg_q, double tf_qa, double qa_len,
                   double avg_qa);

// Creates and fills table impacts inside the caller's open transaction. Note ids are positions in
// kb.entries plus one; note_group[i] (>= 1) is entry i's group id, one per entry. Sets the
// columns' mean lengths, avg_q and avg_qa.
void write_impacts(const SqliteDb& db, const KbFile& kb, const std::vector<int64_t>& note_group, double& avg_q,
                   double& avg_qa);

}  // namespace drivevqa
