// Task-specific prompts: the system prompt, a hint per subtask and a token budget per subtask.
//
// The user turn follows the seed's layout: [KB context], [task hint], [few-shot examples], images
// in camera order, [close-ups of the objects the question names], question, then [the answer's form]
// (prompt/answer_shape.h).
#pragma once

#include <algorithm>
#include <map>
#include <string>

#include "dataset/object_refs.h"
#include "dataset/question_file.h"
#include "prompt/answer_shape.h"
#include "prompt/chat_prompt.h"
#include "route/route.h"

namespace drivevqa {

struct PromptSet {
  std::string system;
  std::map<Subtask, std::string> hints;       // absent or empty: no hint
  std::map<Subtask, int> token_budgets;       // absent: the default budget
  int default_budget = 512;                   // --max_new_tokens_default
  // Said after the question, by the answer's shape (structured answers only; empty: nothing).
  std::string option_instruction;       // --mcq_format letter
  std::string option_text_instruction;  // --mcq_format letter_text
  std::string yes_no_instruction;
  // Close-ups of the objects a question names (--object_crops), per subtask; absent: the flag's value.
  std::map<Subtask, bool> object_crops;
  // Earlier key frames shown before the current images (--history_frames), per subtask; absent: the flag's.
  std::map<Subtask, int> history_frames;
  // Markers drawn on the camera images themselves (--draw_markers), per subtask; absent: the flag's.
  std::map<Subtask, bool> draw_markers;
  // Knowledge-base question/answer pairs shown as examples (--few_shot), per subtask; absent: the flag's.
  std::map<Subtask, int> few_shot;
  // Sampled answers voted on (--self_consistency; 0 or 1: off), per subtask; absent: the flag's.
  std::map<Subtask, int> self_consistency;
};

// A per-subtask setting of the prompts file for subtask `s`, else the flag's value.
template <typename T>
T for_subtask(const std::map<Subtask, T>& settings, Subtask s, T flag) {
  const auto it = settings.find(s);
  return it != settings.end() ? it->second : flag;
}

// The largest value the setting takes over all subtasks (for a bool: whether any subtask has it on).
template <typename T>
T most_over_subtasks(const std::map<Subtask, T>& settings, T flag) {
  T most{};
  for (Subtask s : all_subtasks()) most = std::max(most, for_subtask(settings, s, flag));
  return most;
}

// Upper limits of the per-subtask counts (flags and prompts file alike).
inline constexpr int kMaxFewShot = 16;
inline constexpr int kMaxSelfConsistency = 32;

// The built-in prompts (same information as the seed's; our wording). kFree: the seed's prompts,
// with no answer-shape instructions.
PromptSet default_prompts(int default_budget, AnswerFormat format = AnswerFormat::kStructured);

// The instruction for an answer of this shape ("" for open answers).
const std::string& answer_instruction(const PromptSet& prompts, const AnswerShape& shape, McqFormat mcq_format);

int token_budget(const PromptSet& prompts, Subtask s);

// kShared: images first, then [knowledge base context], [task hint], [close-ups], question, so that
//   every question of a frame starts with the same text and images (a shared prefix).
// kSeed: the seed's order: [knowledge base context], [task hint], images, question.
enum class PromptLayout { kShared, kSeed };

// The chat for one item; images appear as labelled markers in the item's camera order, and
// `instruction` (answer_instruction()) follows the question on its own line when not empty.
// `history`: earlier frames' images, oldest first, before the camera images (in the shared prefix).
// `close_ups`: one line and image marker per object close-up, after the camera images and the
// context, just before the question (so that they are the question's own, after a shared prefix).
// `examples`: few_shot_block()'s text, after the context and hint, before the close-ups (text only:
// in the shared layout the question's own part, so the frame's prefix stays shared).
ChatPrompt build_item_prompt(const PromptSet& prompts, Subtask s, const QuestionItem& item,
                             const std::string& kb_context = "", PromptLayout layout = PromptLayout::kSeed,
                             const std::string& instruction = "", const std::vector<ObjectRef>& close_ups = {},
                             const std::vector<HistoryView>& history = {}, const std::string& examples = "");

}  // namespace drivevqa
