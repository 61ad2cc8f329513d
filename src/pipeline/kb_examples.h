// Few-shot examples from the knowledge base (--few_shot K): the K notes of the question's own
// subtask most similar to it, from any frame of the KB, shown as text before the question.
//
// The KB index groups its notes by subtask (kb/kb_index.h, NoteGroup): route's classify() over the
// note's category and question, the very rule that gives a run's items their subtask, applied
// once per note when the index is built, so each subtask has impact lists of its own and a query
// costs the same on a KB of any size. What must hold: run, ask and the kb command all open a KB
// through open_kb_index(), so they share one index (another grouping would rebuild it).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "dataset/question_file.h"
#include "kb/kb_index.h"
#include "pipeline/run_counters.h"
#include "prompt/few_shot_block.h"
#include "route/route.h"

namespace drivevqa {

// The subtask a note is grouped under: subtask_name(classify(category, question)).
std::string kb_note_subtask(const KbEntry& note);

// KbIndex::open with notes grouped by kb_note_subtask().
std::unique_ptr<KbIndex> open_kb_index(const std::filesystem::path& kb_file, const std::filesystem::path& index_path,
                                       const std::filesystem::path& cache_dir);

// Up to k examples for a question of subtask `s` about (scene, frame), most similar first
// (KbIndex::examples: never the note of this very question; fewer only when the KB holds fewer
// answered notes of the subtask).
std::vector<FewShotExample> few_shot_examples(const KbIndex& kb, Subtask s, const std::string& scene,
                                              const std::string& frame, const std::string& question, int k);

// The prompt text of `item`'s up to k examples (few_shot_block(); "" for k = 0), counted in
// `counters` (few_shot_examples, and few_shot_short when fewer than k).
std::string few_shot_text(const KbIndex& kb, Subtask s, const QuestionItem& item, int k, RunCounters& counters);

}  // namespace drivevqa
