// Answer shapes: which form each question's answer must take, the grammar that enforces it while
// decoding (greedy, sampled, parallel, ask), and the demo's answers read by the scorer's reader.
#include <gtest/gtest.h>

#include <chrono>

#include <nlohmann/json.hpp>

#include "engine/answer.h"
#include "engine/image_resize.h"
#include "eval/mcq_reader.h"
#include "prompt/answer_shape.h"
#include "prompt/prompt_file.h"
#include "prompt/task_prompts.h"
#include "route/route.h"
#include "support/answer_shapes.h"
#include "support/test_support.h"
#include "util/error.h"

namespace drivevqa {
namespace {

const std::string kMovingStatus =
    "What is the moving status of object <c1,CAM_BACK,1088.3,497.5>? Please select the correct answer from the "
    "following options: A. Going ahead. B. Turn left. C. Stopped. D. Back up.";
const std::string kCorruption =
    "What's the current type of corruption? Please select the correct answer from the following options: A. Fog. "
    "B. Snow. C. Saturate. D. ZoomBlur. E. WaterSplashCorruption";

TEST(AnswerShape, OptionsAreReadFromTheTrack1Templates) {
  const auto moving = listed_options(kMovingStatus);
  ASSERT_EQ(moving.size(), 4u);
  EXPECT_EQ(moving[0].letter, 'A');
  EXPECT_EQ(moving[0].text, "Going ahead.");
  EXPECT_EQ(moving[3].text, "Back up.");
  const auto corruption = listed_options(kCorruption);
  ASSERT_EQ(corruption.size(), 5u);
  EXPECT_EQ(corruption[4].letter, 'E');
  EXPECT_EQ(corruption[4].text, "WaterSplashCorruption");
  // Options of several sentences each, and letters inside camera names, are not split.
  const auto behavior = listed_options(
      "Predict the behavior of the ego vehicle. Please select the correct answer from the following options: A. The "
      "ego vehicle is going straight. The ego vehicle is driving slowly. B. The ego vehicle is steering to the left. "
      "C. It stops. D. It turns.");
  ASSERT_EQ(behavior.size(), 4u);
  EXPECT_EQ(behavior[0].text, "The ego vehicle is going straight. The ego vehicle is driving slowly.");
  EXPECT_TRUE(listed_options("What is the visual description of <c2,CAM_BACK_LEFT,1.0,2.0>?").empty());
  EXPECT_TRUE(listed_options("Only A. one option here.").empty());
}

TEST(AnswerShape, YesNoQuestionsAreKnownByTheirForm) {
  for (const char* q : {"Would <c1,CAM_FRONT,1.0,2.0> be in the moving direction of the ego vehicle?",
                        "Will <c2,CAM_BACK,1.0,2.0> change its motion state based on <c1,CAM_FRONT,1.0,2.0>?",
                        "  is there a pedestrian ahead?  ", "Look at <c1,CAM_FRONT,1,2>. Does it move?"}) {
    EXPECT_TRUE(is_yes_no_question(q)) << q;
    EXPECT_EQ(answer_shape(Subtask::kPrediction, q).kind, AnswerKind::kYesNo) << q;
  }
  for (const char* q : {"What object should the ego vehicle notice first? What is its state?",
                        "What are the safe actions of the ego vehicle?", "Is it moving", "Island ahead?",
                        "Is it moving? A. Yes. B. No."}) {
    EXPECT_FALSE(is_yes_no_question(q)) << q;
  }
  EXPECT_EQ(answer_shape(Subtask::kPerceptionMcq, "Is it moving? A. Yes. B. No.").kind, AnswerKind::kOption);
  EXPECT_EQ(answer_shape(Subtask::kPlanningSceneDescription, "What's your comment on this scene?").kind, AnswerKind::kOpen);
}

TEST(AnswerShape, AnMcqWhoseOptionsCannotBeReadTakesTheScorersLetters) {
  const AnswerShape perception = answer_shape(Subtask::kPerceptionMcq, "Which option fits best, please select one?");
  ASSERT_EQ(perception.kind, AnswerKind::kOption);
  EXPECT_EQ(perception.options.size(), 4u);
  EXPECT_EQ(answer_shape(Subtask::kCorruptionMcq, "What's the current type of corruption?").options.size(), 5u);
}

TEST(AnswerShape, GrammarsStateTheShape) {
  const AnswerShape shape = answer_shape(Subtask::kPerceptionMcq, kMovingStatus);
  EXPECT_EQ(answer_grammar(shape, McqFormat::kLetter), "root ::= \"A\" | \"B\" | \"C\" | \"D\"\n");
  EXPECT_EQ(answer_grammar(shape, McqFormat::kLetterText),
            "root ::= \"A. Going ahead.\" | \"B. Turn left.\" | \"C. Stopped.\" | \"D. Back up.\"\n");
  const AnswerShape quoted{AnswerKind::kOption, {{'A', "say \"hi\"\\"}, {'B', "x"}}};
  EXPECT_EQ(answer_grammar(quoted, McqFormat::kLetterText), "root ::= \"A. say \\\"hi\\\"\\\\\" | \"B. x\"\n");
  EXPECT_EQ(answer_grammar(AnswerShape{}, McqFormat::kLetter), "");
  EXPECT_EQ(answer_token_cap(shape, McqFormat::kLetter), 2);
  EXPECT_EQ(answer_token_cap(AnswerShape{}, McqFormat::kLetter), 0);
}

TEST(AnswerShape, TheInstructionFollowsTheQuestionAndFreeModeKeepsTheSeedsPrompts) {
  QuestionItem item;
  item.question = kMovingStatus;
  item.images = {{"CAM_FRONT", "front.jpg"}};
  const PromptSet structured = default_prompts(512);
  const AnswerShape shape = answer_shape(Subtask::kPerceptionMcq, kMovingStatus);
  const std::string& line = answer_instruction(structured, shape, McqFormat::kLetter);
  ASSERT_FALSE(line.empty());
  const ChatPrompt p = build_item_prompt(structured, Subtask::kPerceptionMcq, item, "", PromptLayout::kShared, line);
  EXPECT_EQ(p.user.substr(p.user.size() - line.size() - kMovingStatus.size() - 1), kMovingStatus + "\n" + line);
  const PromptSet free = default_prompts(512, AnswerFormat::kFree);
  EXPECT_TRUE(answer_instruction(free, shape, McqFormat::kLetter).empty());
  EXPECT_NE(free.system.find("letter and text"), std::string::npos);
  EXPECT_EQ(structured.system.find("explain briefly"), std::string::npos);
  // The instructions are data: the prompts file replaces them, and unknown shapes are refused.
  PromptSet edited = structured;
  apply_prompts_json(R"({"answer_instructions": {"yes_no": "Say Yes. or No."}})", "p.json", edited);
  EXPECT_EQ(edited.yes_no_instruction, "Say Yes. or No.");
  EXPECT_THROW(apply_prompts_json(R"({"answer_instructions": {"maybe": "x"}})", "p.json", edited), InputError);
}

// The tiny model answers one MCQ and one yes/no question under their grammars.
class ShapedDecoding : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    EngineOptions options;
    options.n_threads = 2;
    options.image_max_tokens = 16;
    model_ = Model::load(find_model_files(test::tiny_model_dir()), options).release();
    ImageSizing sizing;  // small images keep these runs short
    sizing.max_pixels = 16 * 28 * 28;
    for (const auto& path : test::first_frame_images()) images_.push_back(load_image_file(path, &sizing));
  }
  static void TearDownTestSuite() {
    delete model_;
    images_.clear();
  }
  Generation ask(const std::string& question, Subtask s, GenerationParams params) {
    const AnswerShape shape = answer_shape(s, question);
    params.grammar = answer_grammar(shape, McqFormat::kLetter);
    std::vector<const RgbImage*> ptrs;
    for (const RgbImage& im : images_) ptrs.push_back(&im);
    std::vector<std::string> cams(kCameraOrder.begin(), kCameraOrder.end());
    const std::string text = render_chatml({default_system_prompt(), image_block(cams) + question});
    return answer_prompt(*model_, text, ptrs, params).generation;
  }
  static Model* model_;
  static std::vector<RgbImage> images_;
};
Model* ShapedDecoding::model_ = nullptr;
std::vector<RgbImage> ShapedDecoding::images_;

TEST_F(ShapedDecoding, McqAnswersAreOneOfTheQuestionsLettersGreedyAndSampled) {
  GenerationParams params;
  params.max_new_tokens = 8;  // room to run on if the grammar did not stop it
  const Generation greedy = ask(kCorruption, Subtask::kCorruptionMcq, params);
  ASSERT_EQ(greedy.text.size(), 1u) << greedy.text;
  EXPECT_NE(std::string("ABCDE").find(greedy.text), std::string::npos) << greedy.text;
  params.do_sample = true;
  std::set<std::string> seen;
  for (uint32_t seed = 1; seed <= 8; ++seed) {
    params.seed = seed;
    const Generation g = ask(kMovingStatus, Subtask::kPerceptionMcq, params);
    ASSERT_EQ(g.text.size(), 1u) << g.text;
    EXPECT_NE(std::string("ABCD").find(g.text), std::string::npos) << g.text;
    EXPECT_NE(g.stop, StopReason::kTokenBudget);
    seen.insert(g.text);
  }
  EXPECT_GT(seen.size(), 1u) << "sampling under the grammar still varies with the seed";
}

TEST_F(ShapedDecoding, YesNoAnswersOpenWithYesOrNoAndAddAtMostOneSentence) {
  GenerationParams params;
  params.max_new_tokens = 48;
  for (bool sample : {false, true}) {
    params.do_sample = sample;
    const Generation g = ask("Would <c1,CAM_FRONT,800.0,450.0> be in the moving direction of the ego vehicle?",
                             Subtask::kPrediction, params);
    SCOPED_TRACE(g.text);
    EXPECT_TRUE(g.text.rfind("Yes.", 0) == 0 || g.text.rfind("No.", 0) == 0);
    const size_t first_end = g.text.find_first_of(".!?");
    const std::string rest = g.text.substr(first_end + 1);
    EXPECT_LE(std::count_if(rest.begin(), rest.end(), [](char c) { return c == '.' || c == '!' || c == '?'; }), 1);
    EXPECT_EQ(rest.find('\n'), std::string::npos);
  }
}

TEST_F(ShapedDecoding, AGrammarThatDoesNotParseIsRefused) {
  GenerationParams params;
  params.grammar = "root ::= (";
  std::vector<const RgbImage*> none;
  EXPECT_THROW(answer_prompt(*model_, render_chatml({"", "hi"}), none, params), InputError);
}

TEST(AnswerShapeRun, AskAnswersAnMcqWithOneOfItsLetters) {
  const std::string images = test::images_arg(test::first_frame_images());
  const auto r = test::run_process({test::drivevqa_binary(), "ask", "--model", test::tiny_model_dir().string(), "--images",
                                    images, "--image_max_tokens", "16", "--max_new_tokens", "8", "-t", "2", kCorruption});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(r.out.size(), 2u) << r.out;  // the letter and a newline
  EXPECT_NE(std::string("ABCDE").find(r.out[0]), std::string::npos) << r.out;
}

// The shapes of a whole demo run, greedy and sampled, parallel and one at a time, are checked in
// frame_batch_test.cpp on the runs made there.
TEST(AnswerShapeRun, FreeFormatIsTheSeedsUnshapedBehaviour) {
  const auto dir = test::scratch_dir("shapes-free");
  const auto r = test::run_process({test::drivevqa_binary(), "run", "--json_file", (test::demo_dir() / "questions.json").string(),
                                    "--image_base_dir", test::demo_dir().string(), "--output_file", (dir / "out.json").string(),
                                    "--model_7b", test::tiny_model_dir().string(), "--dtype", "fp16", "--image_max_tokens",
                                    "32", "--max_new_tokens_cap", "12", "-t", "2", "--answer_format", "free", "--limit", "17"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const test::ShapeCounts c = test::count_answer_shapes(nlohmann::json::parse(test::read_text(dir / "out.json")), "free");
  EXPECT_EQ(c.mcq, 3u);
  EXPECT_LT(c.mcq_ok, c.mcq) << "without the grammar the random model does not answer with bare letters";
}

TEST(AnswerShape, ManyLoneOptionLabelsAreReadInLinearTime) {
  // Every "A." would start a fresh search for "B." to the end of the text: quadratic before.
  std::string question;
  while (question.size() < 4'000'000) question += "A. x ";
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(listed_options(question).empty());
  EXPECT_FALSE(is_yes_no_question(question + "?"));
  EXPECT_EQ(answer_shape(Subtask::kPlanningSceneDescription, question).kind, AnswerKind::kOpen);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 5.0);
  question += "B. y";
  EXPECT_EQ(listed_options(question).size(), 2u);
}

}  // namespace
}  // namespace drivevqa
