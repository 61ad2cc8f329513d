// Building one item's prompt in both layouts (prompt/task_prompts.h) and the prompts file
// (prompt/prompt_file.h), in-process.
#include <gtest/gtest.h>

#include "prompt/prompt_file.h"
#include "prompt/task_prompts.h"
#include "util/error.h"

namespace drivevqa {
namespace {

// A prompt set whose every part is recognisable in the output.
PromptSet marked_prompts() {
  PromptSet p;
  p.system = "SYSTEM";
  p.hints[Subtask::kPlanningSceneDescription] = "HINT";
  return p;
}

QuestionItem item_with_cameras(const std::vector<std::string>& cameras, const std::string& question) {
  QuestionItem item;
  item.question = question;
  for (const std::string& camera : cameras) item.images.push_back({camera, camera + ".jpg"});
  return item;
}

size_t count_markers(const std::string& text) {
  size_t n = 0;
  for (size_t at = text.find(kImageMarker); at != std::string::npos; at = text.find(kImageMarker, at + 1)) ++n;
  return n;
}

const std::string kTwoImages = "CAM_FRONT: <__media__>\nCAM_BACK: <__media__>\n";

TEST(UnitPrompt, SeedLayoutPutsContextAndHintBeforeTheImages) {
  const QuestionItem item = item_with_cameras({"CAM_FRONT", "CAM_BACK"}, "What are the safe actions?");
  const ChatPrompt p = build_item_prompt(marked_prompts(), Subtask::kPlanningSceneDescription, item, "KB NOTES\n",
                                         PromptLayout::kSeed, "ANSWER FORM");
  EXPECT_EQ(p.system, "SYSTEM");
  EXPECT_EQ(p.user, "KB NOTES\nHINT\n" + kTwoImages + "What are the safe actions?\nANSWER FORM");
}

TEST(UnitPrompt, SharedLayoutPutsTheImagesFirst) {
  const QuestionItem item = item_with_cameras({"CAM_FRONT", "CAM_BACK"}, "What are the safe actions?");
  const ChatPrompt p = build_item_prompt(marked_prompts(), Subtask::kPlanningSceneDescription, item, "KB NOTES\n",
                                         PromptLayout::kShared, "ANSWER FORM");
  EXPECT_EQ(p.system, "SYSTEM");
  EXPECT_EQ(p.user, kTwoImages + "KB NOTES\nHINT\nWhat are the safe actions?\nANSWER FORM");
}

// The point of the shared layout: every question of a frame begins with the same rendered text up
// to and including its images, whatever its subtask, context and question.
TEST(UnitPrompt, SharedLayoutGivesAFramesQuestionsOneCommonPrefix) {
  const PromptSet prompts = default_prompts(512);
  const QuestionItem mcq = item_with_cameras({"CAM_FRONT", "CAM_BACK"}, "Which way? A. Left. B. Right.");
  const QuestionItem scene = item_with_cameras({"CAM_FRONT", "CAM_BACK"}, "What are the safe actions?");
  const std::string prefix = render_chatml({prompts.system, kTwoImages});
  const std::string shared_prefix = prefix.substr(0, prefix.rfind("<|im_end|>"));
  const std::string a = render_chatml(build_item_prompt(prompts, Subtask::kPerceptionMcq, mcq, "", PromptLayout::kShared));
  const std::string b = render_chatml(
      build_item_prompt(prompts, Subtask::kPlanningSceneDescription, scene, "KB NOTES\n", PromptLayout::kShared));
  EXPECT_EQ(a.rfind(shared_prefix, 0), 0u) << a;
  EXPECT_EQ(b.rfind(shared_prefix, 0), 0u) << b;
  // The seed's layout puts the hint first, so there the two differ before the images.
  const std::string seed_b = render_chatml(
      build_item_prompt(prompts, Subtask::kPlanningSceneDescription, scene, "KB NOTES\n", PromptLayout::kSeed));
  EXPECT_NE(seed_b.rfind(shared_prefix, 0), 0u) << seed_b;
}

TEST(UnitPrompt, WithoutContextHintOrInstructionTheQuestionFollowsTheImages) {
  const QuestionItem item = item_with_cameras({"CAM_FRONT", "CAM_BACK"}, "Is it raining?");
  PromptSet prompts = marked_prompts();
  prompts.hints[Subtask::kPrediction] = "";  // an empty hint is no hint
  for (const PromptLayout layout : {PromptLayout::kSeed, PromptLayout::kShared}) {
    const ChatPrompt p = build_item_prompt(prompts, Subtask::kPrediction, item, "", layout, "");
    EXPECT_EQ(p.user, kTwoImages + "Is it raining?");
  }
}

TEST(UnitPrompt, ImagesAreLabelledInTheItemsCameraOrder) {
  const std::vector<std::string> cameras(kCameraOrder.begin(), kCameraOrder.end());
  const QuestionItem item = item_with_cameras(cameras, "Q?");
  const ChatPrompt p = build_item_prompt(marked_prompts(), Subtask::kPerceptionMcq, item);
  std::string expected;
  for (const std::string& camera : cameras) expected += camera + ": <__media__>\n";
  EXPECT_EQ(p.user, expected + "Q?");
  // An item missing a camera keeps the others' order and gets no marker for it.
  const QuestionItem five = item_with_cameras({"CAM_FRONT", "CAM_FRONT_LEFT", "CAM_BACK"}, "Q?");
  EXPECT_EQ(build_item_prompt(marked_prompts(), Subtask::kPerceptionMcq, five).user,
            "CAM_FRONT: <__media__>\nCAM_FRONT_LEFT: <__media__>\nCAM_BACK: <__media__>\nQ?");
}

// Each marker claims an image: a marker written in a question or KB note must not reach the engine.
TEST(UnitPrompt, MarkersInTheQuestionOrContextAreDefused) {
  const QuestionItem item = item_with_cameras({"CAM_FRONT"}, "Is <__media__> there? <__media__><__media__>");
  for (const PromptLayout layout : {PromptLayout::kSeed, PromptLayout::kShared}) {
    const ChatPrompt p = build_item_prompt(marked_prompts(), Subtask::kPerceptionMcq, item, "note <__media__>\n", layout);
    EXPECT_EQ(count_markers(p.user), 1u) << p.user;
    EXPECT_NE(p.user.find("Is <image> there? <image><image>"), std::string::npos) << p.user;
    EXPECT_NE(p.user.find("note <image>\n"), std::string::npos) << p.user;
  }
}

TEST(UnitPrompt, TokenBudgetsFallBackToTheDefault) {
  const PromptSet prompts = default_prompts(333);
  EXPECT_EQ(token_budget(prompts, Subtask::kPrediction), 128);
  EXPECT_EQ(token_budget(prompts, Subtask::kPerceptionSceneDescription), 256);
  EXPECT_EQ(token_budget(prompts, Subtask::kPerceptionMcq), 333);
  EXPECT_EQ(token_budget(prompts, Subtask::kBehaviorMcq), 333);
}

TEST(UnitPromptsFile, AValidFileReplacesOnlyThePartsItNames) {
  PromptSet p = default_prompts(512);
  const std::string untouched_option = p.option_instruction;
  apply_prompts_json(R"({
      "system": "You drive.",
      "hints": {"Prediction": "Think ahead.", "Planning-VQAs-Scene-Description": ""},
      "token_budgets": {"Behavior-MCQs": 7, "Prediction": 1048576},
      "answer_instructions": {"yes_no": "Yes or no."}
    })",
                     "p.json", p);
  EXPECT_EQ(p.system, "You drive.");
  EXPECT_EQ(p.hints.at(Subtask::kPrediction), "Think ahead.");
  EXPECT_EQ(p.hints.at(Subtask::kPlanningSceneDescription), "");
  EXPECT_EQ(p.hints.at(Subtask::kPerceptionSceneDescription), default_prompts(512).hints.at(Subtask::kPerceptionSceneDescription));
  EXPECT_EQ(token_budget(p, Subtask::kBehaviorMcq), 7);
  EXPECT_EQ(token_budget(p, Subtask::kPrediction), 1 << 20);
  EXPECT_EQ(token_budget(p, Subtask::kPlanningSceneDescription), 512);
  EXPECT_EQ(p.yes_no_instruction, "Yes or no.");
  EXPECT_EQ(p.option_instruction, untouched_option);
  // The removed hint is gone from the prompt.
  const QuestionItem item = item_with_cameras({"CAM_FRONT"}, "What are the safe actions?");
  EXPECT_EQ(build_item_prompt(p, Subtask::kPlanningSceneDescription, item).user, "CAM_FRONT: <__media__>\nWhat are the safe actions?");
  // An empty object changes nothing.
  PromptSet same = default_prompts(512);
  apply_prompts_json("{}", "p.json", same);
  EXPECT_EQ(prompts_to_json(same), prompts_to_json(default_prompts(512)));
}

// What `drivevqa prompts` prints is a prompts file that gives back the same prompts.
TEST(UnitPromptsFile, ThePrintedPromptsReadBackTheSame) {
  PromptSet edited = default_prompts(512);
  edited.system = "S \"quoted\"\nnext line";
  edited.hints[Subtask::kBehaviorMcq] = "B";
  edited.token_budgets[Subtask::kCorruptionMcq] = 9;
  const std::string printed = prompts_to_json(edited);
  PromptSet read_back = default_prompts(512, AnswerFormat::kFree);
  apply_prompts_json(printed, "printed.json", read_back);
  EXPECT_EQ(read_back.system, edited.system);
  EXPECT_EQ(read_back.hints.at(Subtask::kBehaviorMcq), "B");
  EXPECT_EQ(token_budget(read_back, Subtask::kCorruptionMcq), 9);
  EXPECT_EQ(read_back.option_text_instruction, edited.option_text_instruction);
  EXPECT_EQ(prompts_to_json(read_back), printed);
}

// The InputError `text` gives, or "" when it is accepted.
std::string prompts_error(const std::string& text) {
  PromptSet p = default_prompts(512);
  try {
    apply_prompts_json(text, "bad.json", p);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(UnitPromptsFile, UnknownKeysAreRefusedByName) {
  const std::string top = prompts_error(R"({"sytem": "typo"})");
  EXPECT_NE(top.find("bad.json"), std::string::npos) << top;
  EXPECT_NE(top.find("unknown key 'sytem'"), std::string::npos) << top;
  const std::string subtask = prompts_error(R"({"hints": {"Perception-MCQ": "x"}})");
  EXPECT_NE(subtask.find("bad.json: hints: "), std::string::npos) << subtask;
  EXPECT_NE(subtask.find("'Perception-MCQ'"), std::string::npos) << subtask;
  const std::string budget_subtask = prompts_error(R"({"token_budgets": {"Nope": 5}})");
  EXPECT_NE(budget_subtask.find("bad.json: token_budgets: "), std::string::npos) << budget_subtask;
  const std::string shape = prompts_error(R"({"answer_instructions": {"maybe": "x"}})");
  EXPECT_NE(shape.find("unknown shape 'maybe'"), std::string::npos) << shape;
}

TEST(UnitPromptsFile, ValuesOfTheWrongTypeAreRefusedByName) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"(["system"])", "expected a JSON object"},
      {R"("text")", "expected a JSON object"},
      {R"({"system": 5})", "system must be a string"},
      {R"({"system": null})", "system must be a string"},
      {R"({"hints": ["x"]})", "hints must be an object"},
      {R"({"hints": {"Prediction": 1}})", "hints.Prediction must be a string"},
      {R"({"token_budgets": 5})", "token_budgets must be an object"},
      {R"({"token_budgets": {"Prediction": "64"}})", "token_budgets.Prediction must be a positive integer"},
      {R"({"token_budgets": {"Prediction": 0}})", "token_budgets.Prediction must be a positive integer"},
      {R"({"token_budgets": {"Prediction": -3}})", "token_budgets.Prediction must be a positive integer"},
      {R"({"token_budgets": {"Prediction": 64.5}})", "token_budgets.Prediction must be a positive integer"},
      {R"({"token_budgets": {"Prediction": 1048577}})", "token_budgets.Prediction must be a positive integer"},
      {R"({"token_budgets": {"Prediction": 18446744073709551615}})", "token_budgets.Prediction must be a positive integer"},
      {R"({"answer_instructions": "x"})", "answer_instructions must be an object"},
      {R"({"answer_instructions": {"option": false}})", "answer_instructions.option must be a string"},
      {R"({"system": "x")", "not valid JSON"},
  };
  for (const auto& [text, message] : cases) {
    const std::string error = prompts_error(text);
    EXPECT_NE(error.find(message), std::string::npos) << text << " gave: '" << error << "'";
    EXPECT_EQ(error.rfind("bad.json: ", 0), 0u) << text << " gave: '" << error << "'";
  }
}

}  // namespace
}  // namespace drivevqa
