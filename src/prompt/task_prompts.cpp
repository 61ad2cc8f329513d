#include "prompt/task_prompts.h"

#include <algorithm>

namespace drivevqa {

PromptSet default_prompts(int default_budget, AnswerFormat format) {
  PromptSet p;
  const bool structured = format != AnswerFormat::kFree;
  p.system = default_system_prompt(structured);
  p.default_budget = default_budget;
  p.hints[Subtask::kPerceptionSceneDescription] =
      "Name at most five objects that matter most for driving, with their camera and position, then sum up the "
      "scene in one sentence.";
  // Structured answers state the yes/no form per question (most Prediction questions are yes/no,
  // the "notice first" chains are not).
  if (!structured) p.hints[Subtask::kPrediction] = "Answer Yes or No first, then give one short reason.";
  p.hints[Subtask::kPlanningSceneDescription] =
      "Give at most three safe actions and at most three dangerous actions for the ego vehicle, then one short "
      "note.";
  p.token_budgets[Subtask::kPrediction] = 128;
  p.token_budgets[Subtask::kPerceptionSceneDescription] = 256;
  p.token_budgets[Subtask::kPlanningSceneDescription] = 512;
  if (structured) {
    p.option_instruction = "Answer with the letter of the correct option only.";
    p.option_text_instruction = "Answer with the letter of the correct option, a period and the option's text as listed.";
    p.yes_no_instruction = "Answer \"Yes.\" or \"No.\", then at most one short sentence giving the reason.";
  }
  return p;
}

const std::string& answer_instruction(const PromptSet& prompts, const AnswerShape& shape, McqFormat mcq_format) {
  static const std::string kNone;
  switch (shape.kind) {
    case AnswerKind::kOption:
      return mcq_format == McqFormat::kLetterText ? prompts.option_text_instruction : prompts.option_instruction;
    case AnswerKind::kYesNo: return prompts.yes_no_instruction;
    case AnswerKind::kOpen: return kNone;
  }
  return kNone;
}

int token_budget(const PromptSet& prompts, Subtask s) {
  const auto it = prompts.token_budgets.find(s);
  return it != prompts.token_budgets.end() ? it->second : prompts.default_budget;
}

namespace {

// Outside text must not contain the engine's image marker: each one would claim an image.
std::string without_image_markers(std::string text) {
  for (size_t at = text.find(kImageMarker); at != std::string::npos; at = text.find(kImageMarker, at)) {
    text.replace(at, kImageMarker.size(), "<image>");
  }
  return text;
}

}  // namespace

ChatPrompt build_item_prompt(const PromptSet& prompts, Subtask s, const QuestionItem& item, const std::string& kb_context,
                             PromptLayout layout, const std::string& instruction, const std::vector<ObjectRef>& close_ups,
                             const std::vector<HistoryView>& history, const std::string& examples) {
  std::string context = without_image_markers(kb_context);
  if (const auto it = prompts.hints.find(s); it != prompts.hints.end() && !it->second.empty()) {
    context += it->second;
    context += "\n";
  }
  context += without_image_markers(examples);
  std::vector<std::string> cameras;
  for (const CameraImage& image : item.images) cameras.push_back(image.camera);
  const std::string images = history_block(history) + image_block(cameras);
  std::string user = layout == PromptLayout::kShared ? images + context : context + images;
  user += close_up_block(close_ups);
  user += without_image_markers(item.question);
  if (!instruction.empty()) user += "\n" + instruction;
  return {prompts.system, std::move(user)};
}

}  // namespace drivevqa
