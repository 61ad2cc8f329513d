// Routing: which subtask a question belongs to, and which model answers it.
//
// classify() reproduces the seed script's rules exactly on its six subtasks (shared/docs/track1.md
// §3) and adds Corruption-MCQs and Behavior-MCQs, which the seed folds into Perception-MCQs.
#pragma once

#include <array>
#include <map>
#include <string>
#include <string_view>

namespace drivevqa {

enum class Subtask {
  kPerceptionMcq,
  kPerceptionObjectDescription,
  kPerceptionSceneDescription,
  kPrediction,
  kPlanningObjectDescription,
  kPlanningSceneDescription,
  kCorruptionMcq,
  kBehaviorMcq,
};
inline constexpr size_t kSubtaskCount = 8;

// The names written into results (`subtask`), exactly as the seed writes its six.
std::string_view subtask_name(Subtask s);
// Throws UsageError for an unknown name.
Subtask subtask_from_name(std::string_view name);
const std::array<Subtask, kSubtaskCount>& all_subtasks();

// `category` as given in the item (any case); `question` the question text, of any length: one
// linear pass, no recursion.
Subtask classify(std::string_view category, std::string_view question);

// The seed's two regular expressions, searched in the lower-cased question, as linear scanners:
// std::regex recurses per character and overflows the stack on a long object reference. Exactly
// std::regex_search's result (ECMAScript, "C" locale) on every input; public for that test.
bool has_option_label(std::string_view lowered);         // (^|[^a-z0-9])[a-d]\.\s
bool asks_visual_description(std::string_view lowered);  // what is the visual description of <c\d+,\s*cam_

enum class ModelSize { k7B, k72B };
std::string_view model_size_name(ModelSize m);  // "7B" / "72B"

// Subtask -> model. Defaults to the seed's assignment.
class RoutingTable {
 public:
  RoutingTable();
  ModelSize model_for(Subtask s) const { return table_.at(s); }
  // "Prediction=72B". Throws UsageError naming the bad part.
  void apply_override(std::string_view assignment);

 private:
  std::map<Subtask, ModelSize> table_;
};

}  // namespace drivevqa
