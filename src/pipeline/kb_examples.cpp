#include "pipeline/kb_examples.h"

namespace drivevqa {

std::string kb_note_subtask(const KbEntry& note) {
  return std::string(subtask_name(classify(note.category, note.question)));
}

std::unique_ptr<KbIndex> open_kb_index(const std::filesystem::path& kb_file, const std::filesystem::path& index_path,
                                       const std::filesystem::path& cache_dir) {
  return KbIndex::open(kb_file, index_path, cache_dir, kb_note_subtask);
}

std::vector<FewShotExample> few_shot_examples(const KbIndex& kb, Subtask s, const std::string& scene,
                                              const std::string& frame, const std::string& question, int k) {
  std::vector<FewShotExample> examples;
  for (KbHit& hit : kb.examples(std::string(subtask_name(s)), scene, frame, question, k)) {
    examples.push_back({std::move(hit.entry.question), std::move(hit.entry.answer)});
  }
  return examples;
}

std::string few_shot_text(const KbIndex& kb, Subtask s, const QuestionItem& item, int k, RunCounters& counters) {
  if (k <= 0) return "";
  const std::vector<FewShotExample> examples = few_shot_examples(kb, s, item.scene_token, item.frame_token, item.question, k);
  counters.few_shot_examples += examples.size();
  if (static_cast<int>(examples.size()) < k) ++counters.few_shot_short;
  return few_shot_block(examples);
}

}  // namespace drivevqa
