// `drivevqa eval`: reading and pairing answer files, the Track 1 score, the reports (in process),
// and the real command on the demo's results and gt.json.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <functional>

#include "eval/ground_truth.h"
#include "eval/report.h"
#include "eval/track1_score.h"
#include "support/test_support.h"
#include "util/error.h"

namespace drivevqa {
namespace {

using OrderedJson = nlohmann::ordered_json;

const std::string kScene = "9f1f0000000000000000000000000001";
const std::string kFrame = "9a110000000000000000000000000001";
const std::string kMcq =
    "What is the moving status of object <c1,CAM_FRONT,812.4,540.0>? Please select the correct answer from the "
    "following options: A. Going ahead. B. Turn left. C. Stopped. D. Back up.";
const std::string kMcq2 =
    "What is the moving status of object <c2,CAM_BACK,1088.3,497.5>? Please select the correct answer from the "
    "following options: A. Going ahead. B. Turn left. C. Stopped. D. Back up.";
const std::string kMcq3 =
    "What is the moving status of object <c3,CAM_FRONT_LEFT,420.0,560.0>? Please select the correct answer from the "
    "following options: A. Going ahead. B. Turn left. C. Stopped. D. Back up.";
const std::string kYesNo = "Would <c1,CAM_FRONT,812.4,540.0> be in the moving direction of the ego vehicle?";
const std::string kYesNo2 = "Will <c2,CAM_BACK,1088.3,497.5> be in the moving direction of <c1,CAM_FRONT,812.4,540.0>?";
const std::string kSafe = "What are the safe actions of the ego vehicle?";
const std::string kCorruption =
    "What's the current type of corruption? Please select the correct answer from the following options: A. Fog. "
    "B. Snow. C. Saturate. D. ZoomBlur. E. WaterSplashCorruption";

OrderedJson item(const std::string& question, const std::string& answer, const std::string& category,
          const std::string& frame = kFrame) {
  return {{"scene_token", kScene}, {"frame_token", frame}, {"question", question}, {"answer", answer},
          {"category", category}};
}

AnswerFile ground_truth_of(const OrderedJson& j) { return parse_ground_truth(j.dump(), "gt.json"); }
AnswerFile predictions_of(const OrderedJson& j) { return parse_predictions(j.dump(), "results.json"); }

// The InputError message `f` throws, or "" when it throws none.
std::string input_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(EvalPairing, MissingExtraAndDuplicateQuestionsPairInOrder) {
  const AnswerFile gt = ground_truth_of(OrderedJson::array({item(kMcq, "A", "perception"), item(kMcq, "C", "perception"),
                                                     item(kYesNo, "Yes.", "prediction"), item(kSafe, "Keep going.", "planning")}));
  // The duplicate question twice (in order), the yes/no question missing, one question not in the ground truth.
  const AnswerFile pred = predictions_of(OrderedJson::array({item(kSafe, "Slow down.", "planning"), item(kMcq, "first", "perception"),
                                                      item(kMcq2, "B", "perception"), item(kMcq, "second", "perception")}));
  const Pairing p = pair_items(gt, pred);
  ASSERT_EQ(p.pairs.size(), 3u);
  EXPECT_EQ(p.pairs[0], (std::pair<size_t, size_t>{0, 1}));
  EXPECT_EQ(p.pairs[1], (std::pair<size_t, size_t>{1, 3}));
  EXPECT_EQ(p.pairs[2], (std::pair<size_t, size_t>{3, 0}));
  ASSERT_EQ(p.missing_predictions.size(), 1u);
  EXPECT_EQ(p.missing_predictions[0].index, 2u);
  EXPECT_EQ(p.missing_predictions[0].reason, "no prediction");
  ASSERT_EQ(p.extra_predictions.size(), 1u);
  EXPECT_EQ(p.extra_predictions[0].index, 2u);
  EXPECT_EQ(p.extra_predictions[0].reason, "no ground truth");
  EXPECT_EQ(describe_item(gt.items[2], 20), "#2 Would <c1,CAM_FRONT,…");
}

TEST(EvalPairing, SameQuestionInAnotherFrameOrWithoutQuestionDoesNotPair) {
  const AnswerFile gt = ground_truth_of(OrderedJson::array({item(kSafe, "Keep going.", "planning")}));
  OrderedJson no_question = item(kSafe, "x", "planning");
  no_question.erase("question");
  const AnswerFile pred = predictions_of(OrderedJson::array({item(kSafe, "Keep going.", "planning", "other-frame"), no_question}));
  const Pairing p = pair_items(gt, pred);
  EXPECT_TRUE(p.pairs.empty());
  ASSERT_EQ(p.extra_predictions.size(), 2u);
  EXPECT_EQ(p.extra_predictions[0].reason, "no ground truth");
  EXPECT_EQ(p.extra_predictions[1].reason, "no question");
  EXPECT_EQ(describe_item(pred.items[1]), "#1 (no question)");
  // `prompt` is read where `question` is absent.
  OrderedJson prompt = item("", "Keep going.", "planning");
  prompt.erase("question");
  prompt["prompt"] = kSafe;
  EXPECT_EQ(pair_items(gt, predictions_of(OrderedJson::array({prompt}))).pairs.size(), 1u);
}

TEST(EvalGroundTruth, NestedFormTakesTheCategoryFromTheKey) {
  const OrderedJson nested = {{kScene, {{"scene_description", "a street"},
                                 {"key_frames", {{kFrame, {{"QA", {{"perception", OrderedJson::array({{{"Q", kMcq}, {"A", "C"}}})},
                                                                   {"Planning", OrderedJson::array({{{"Q", kSafe}, {"A", "Keep going."}},
                                                                                             {{"Q", kSafe}, {"A", "Slow down."}}})}}}}}}}}}};
  const AnswerFile gt = ground_truth_of(nested);
  ASSERT_EQ(gt.items.size(), 3u);
  EXPECT_EQ(gt.items[0].category, "perception");
  EXPECT_EQ(gt.items[0].answer, "C");
  EXPECT_EQ(gt.items[2].category, "planning");
  EXPECT_EQ(gt.items[2].index, 2u);
  EXPECT_EQ(gt.items[2].where, "scene 9f1f0000…/frame 9a110000…/Planning[1]");
  EXPECT_EQ(gt.items[1].scene_token, kScene);
  // Duplicates pair in order with a list of predictions.
  const Pairing p = pair_items(gt, predictions_of(OrderedJson::array({item(kSafe, "one", "planning"), item(kSafe, "two", "planning")})));
  ASSERT_EQ(p.pairs.size(), 2u);
  EXPECT_EQ(p.pairs[0], (std::pair<size_t, size_t>{1, 0}));
  EXPECT_EQ(p.pairs[1], (std::pair<size_t, size_t>{2, 1}));
  EXPECT_EQ(p.missing_predictions.size(), 1u);
}

TEST(EvalGroundTruth, BadFilesAreRefusedNamingFileAndPosition) {
  const auto gt_error = [](const std::string& text) { return input_error([&] { parse_ground_truth(text, "gt.json"); }); };
  const auto pred_error = [](const std::string& text) { return input_error([&] { parse_predictions(text, "res.json"); }); };
  EXPECT_NE(gt_error("[{").find("gt.json: not valid JSON"), std::string::npos) << gt_error("[{");
  EXPECT_NE(gt_error("42").find("gt.json: ground truth must be"), std::string::npos);
  EXPECT_NE(pred_error("{}").find("res.json: predictions must be a JSON list"), std::string::npos);
  OrderedJson list = OrderedJson::array({item(kMcq, "A", "perception"), 7});
  EXPECT_NE(gt_error(list.dump()).find("gt.json: item 1 is not an object"), std::string::npos) << gt_error(list.dump());
  list[1] = item(kMcq, "A", "perception");
  list[1].erase("answer");
  EXPECT_NE(gt_error(list.dump()).find("gt.json: item 1: no \"answer\" field"), std::string::npos);
  list[1]["answer"] = 3;
  EXPECT_NE(pred_error(list.dump()).find("res.json: item 1: \"answer\" is not a string"), std::string::npos);
  list[1]["answer"] = "A";
  list[1].erase("scene_token");
  EXPECT_NE(pred_error(list.dump()).find("item 1: no \"scene_token\""), std::string::npos);
  EXPECT_NE(gt_error(OrderedJson::array({item(kMcq, "", "perception")}).dump()).find("every ground-truth answer is empty"),
            std::string::npos);
  const OrderedJson nested = {{kScene, {{"key_frames", {{kFrame, {{"QA", {{"perception", OrderedJson::array({{{"Q", kMcq}}})}}}}}}}}}};
  EXPECT_NE(gt_error(nested.dump()).find("/perception[0]: no \"A\" field"), std::string::npos) << gt_error(nested.dump());
  EXPECT_NE(gt_error(R"({"s": {"frames": {}}})").find("scene s: no \"key_frames\" object"), std::string::npos);
  // Deep nesting is refused with a message, not a crash.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_NE(gt_error(deep).find("nested deeper than 64"), std::string::npos) << gt_error(deep);
  EXPECT_EQ(gt_error(std::string(60, '[') + std::string(60, ']')).find("nested deeper"), std::string::npos);
}

TEST(EvalScore, YesNoReadsTheFirstWord) {
  EXPECT_EQ(yes_no_word("Yes."), "yes");
  EXPECT_EQ(yes_no_word("  **NO**, it will not"), "no");
  EXPECT_EQ(yes_no_word("Yesterday it moved"), "");
  EXPECT_EQ(yes_no_word("It is yes"), "");
  EXPECT_EQ(yes_no_word(""), "");
}

// Seven hand-made answers whose expected readings are worked out in the comments.
Evaluation hand_made_evaluation(AnswerFile& gt, AnswerFile& pred, Pairing& pairing) {
  gt = ground_truth_of(OrderedJson::array({item(kMcq, "C", "perception"), item(kMcq2, "B", "perception"),
                                    item(kMcq3, "D", "perception"), item(kYesNo, "Yes.", "prediction"),
                                    item(kYesNo2, "Yes.", "prediction"), item(kSafe, "keep going at the same speed", "planning"),
                                    item(kCorruption, "E", "corruption")}));
  pred = predictions_of(OrderedJson::array({
      item(kMcq, "C. Going ahead. The object is moving at a constant speed.", "perception"),  // DriveBench reads A
      item(kMcq2, "B", "perception"),                                                        // right for both
      item(kMcq3, "The answer is D", "perception"),                                          // strict reads nothing
      item(kYesNo, "Yes, it would.", "prediction"),
      item(kYesNo2, "No <script>alert('x')</script>", "prediction"),
      item(kSafe, "keep going at the same speed", "planning"),
      item(kCorruption, "E", "corruption"),  // DriveBench never reads E
  }));
  pairing = pair_items(gt, pred);
  return evaluate(gt, pred, pairing, nullptr, nullptr);
}

TEST(EvalScore, OptionsAreScoredByBothReadersAndMisreadsCounted) {
  AnswerFile gt, pred;
  Pairing pairing;
  const Evaluation ev = hand_made_evaluation(gt, pred, pairing);
  ASSERT_EQ(ev.questions.size(), 7u);
  const QuestionScore& misread = ev.questions[0];
  EXPECT_EQ(misread.subtask, Subtask::kPerceptionMcq);
  EXPECT_EQ(misread.kind, AnswerKind::kOption);
  EXPECT_EQ(misread.answer_letter_drivebench, 'A');
  EXPECT_EQ(misread.answer_letter_strict, 'C');
  EXPECT_FALSE(misread.correct);
  EXPECT_TRUE(misread.correct_strict);
  EXPECT_TRUE(misread.misread_risk);
  EXPECT_TRUE(ev.questions[2].correct);
  EXPECT_FALSE(ev.questions[2].correct_strict);
  EXPECT_EQ(ev.questions[3].kind, AnswerKind::kYesNo);
  EXPECT_TRUE(ev.questions[3].correct);
  EXPECT_FALSE(ev.questions[4].correct);
  EXPECT_FALSE(ev.questions[6].correct) << "E is unreadable by DriveBench on both sides: wrong";
  EXPECT_TRUE(ev.questions[6].correct_strict);
  EXPECT_EQ(ev.misread_risk, 3u);

  ASSERT_EQ(ev.subtasks.size(), 4u);
  const SubtaskSummary& mcq = ev.subtasks[0];
  EXPECT_EQ(mcq.subtask, Subtask::kPerceptionMcq);
  EXPECT_EQ(mcq.option_count, 3u);
  EXPECT_EQ(mcq.option_correct, 2u);
  EXPECT_EQ(mcq.option_correct_strict, 2u);
  EXPECT_EQ(mcq.misread_risk, 2u);
  EXPECT_EQ(ev.subtasks[1].subtask, Subtask::kPrediction);
  EXPECT_DOUBLE_EQ(*ev.subtasks[1].accuracy(), 0.5);
  EXPECT_EQ(ev.subtasks[2].subtask, Subtask::kPlanningSceneDescription);
  EXPECT_EQ(ev.subtasks[2].open_count, 1u);
  EXPECT_FALSE(ev.subtasks[2].accuracy().has_value());
  EXPECT_EQ(ev.subtasks[3].subtask, Subtask::kCorruptionMcq);
  ASSERT_EQ(ev.categories.size(), 4u);
  EXPECT_EQ(ev.categories[0].first, "perception");
  EXPECT_EQ(ev.categories[3].first, "corruption");
  EXPECT_EQ(ev.categories[1].second.questions, 2u);
}

TEST(EvalScore, Track1PointsNeverCountAMissingJudgeScoreAsZero) {
  AnswerFile gt, pred;
  Pairing pairing;
  Evaluation ev = hand_made_evaluation(gt, pred, pairing);
  const QuestionScore& open = ev.questions[5];
  EXPECT_DOUBLE_EQ(open.rouge_l, 1.0);
  EXPECT_DOUBLE_EQ(open.points_without_judge(), 10.0);  // 10 R + 10 M, METEOR 0 without a Meteor
  EXPECT_FALSE(open.points().has_value());
  // Closed correct under DriveBench: questions 1, 2 (MCQ) and 3 (yes/no): 300 points over 7 questions.
  EXPECT_EQ(ev.overall.closed_correct, 3u);
  EXPECT_FALSE(ev.overall.score().has_value());
  EXPECT_NEAR(ev.overall.without_judge(), 310.0 / 7, 1e-9);
  EXPECT_EQ(ev.overall.open_without_judge(), 1u);
  EXPECT_NEAR(*ev.overall.score_of_complete(), 300.0 / 6, 1e-9);
  // With a judge score of 50 the open answer gets 10 + 0.8 x 50 = 50 points.
  ev.questions[5].judge = 50.0;
  summarize(ev, nullptr);
  EXPECT_NEAR(*ev.questions[5].points(), 50.0, 1e-9);
  EXPECT_NEAR(*ev.overall.score(), 350.0 / 7, 1e-9);
  EXPECT_NEAR(*ev.categories[2].second.score(), 50.0, 1e-9);
  EXPECT_NEAR(*ev.subtasks[2].judge_mean(), 50.0, 1e-9);
  EXPECT_EQ(rubric_for(Subtask::kPlanningObjectDescription), JudgeRubric::kPlanning);
  EXPECT_EQ(rubric_for(Subtask::kPerceptionSceneDescription), JudgeRubric::kPerceptionVqa);
}

TEST(EvalReport, TextJsonAndHtmlSayTheJudgeIsAbsentAndEscapeAnswers) {
  AnswerFile gt, pred;
  Pairing pairing;
  const Evaluation ev = hand_made_evaluation(gt, pred, pairing);
  const ReportInput in{gt, pred, pairing, ev, "", ""};
  const std::string text = text_report(in);
  EXPECT_NE(text.find("paired 7 of 7"), std::string::npos) << text;
  EXPECT_NE(text.find("without judge"), std::string::npos);
  EXPECT_NE(text.find("Perception-MCQs"), std::string::npos);
  const OrderedJson j = json_report(in);
  EXPECT_EQ(j["track1"]["judge_included"], false);
  EXPECT_TRUE(j["track1"]["overall"]["score"].is_null());
  EXPECT_NEAR(j["track1"]["overall"]["score_without_judge"].get<double>(), 310.0 / 7, 1e-9);
  EXPECT_EQ(j["track1"]["overall"]["open_without_judge"], 1);
  EXPECT_EQ(j["subtasks"].size(), 4u);
  EXPECT_EQ(j["questions"][0]["letter_drivebench"], "A");
  EXPECT_EQ(j["misread_risk"], 3);
  const std::string html = html_report(in);
  EXPECT_EQ(test::count_of(html, "<rect"), 4u);
  EXPECT_EQ(test::count_of(html, "fill=\"#2a7ab9\""), 4u);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("No &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"), std::string::npos);
  for (const char* fetch : {"<link", "src=", "url(", "@import"}) EXPECT_EQ(html.find(fetch), std::string::npos) << fetch;
  EXPECT_EQ(html_escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
}

// The real command on the demo: the tiny model answers it once for the whole suite.
class EvalDemo : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(test::scratch_dir("eval-demo"));
    const auto r = test::run_process({test::drivevqa_binary(), "run", "--json_file", (test::demo_dir() / "questions.json").string(),
                                      "--image_base_dir", test::demo_dir().string(), "--output_file", results().string(),
                                      "--model_7b", test::tiny_model_dir().string(), "--dtype", "fp16",
                                      "--image_max_tokens", "32", "--max_new_tokens_cap", "12", "-t", "2"});
    run_exit_ = r.exit_code;
    run_err_ = new std::string(r.err);
  }
  void SetUp() override { ASSERT_EQ(run_exit_, 0) << *run_err_; }
  static std::filesystem::path results() { return *dir_ / "results.json"; }
  static test::ProcessResult eval(const std::filesystem::path& predictions, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {test::drivevqa_binary(), "eval", "--predictions", predictions.string(),
                                     "--ground_truth", (test::demo_dir() / "gt.json").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_process(args);
  }
  static inline std::filesystem::path* dir_ = nullptr;
  static inline std::string* run_err_ = nullptr;
  static inline int run_exit_ = -1;
};

TEST_F(EvalDemo, ScoresTheDemoRunAndWritesJsonAndHtml) {
  const auto dir = test::scratch_dir("eval-demo-out");
  const auto r = eval(results(), {"--json", (dir / "eval.json").string(), "--report", (dir / "report.html").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* expected : {"Perception-MCQs", "Planning-VQAs-Scene-Description", "Corruption-MCQs", "Behavior-MCQs",
                               "overall", "without judge", "acc(DB)"}) {
    EXPECT_NE(r.out.find(expected), std::string::npos) << expected << "\n" << r.out;
  }
  const OrderedJson results_json = OrderedJson::parse(test::read_text(results()));
  size_t answered = 0;
  for (const OrderedJson& it : results_json) answered += it["answer"].get<std::string>().rfind("[drivevqa error] ", 0) == 0 ? 0 : 1;
  const OrderedJson j = OrderedJson::parse(test::read_text(dir / "eval.json"));
  EXPECT_EQ(j["pairing"]["paired"], answered);
  EXPECT_EQ(j["ground_truth"]["items"], answered);
  EXPECT_EQ(j["pairing"]["missing_predictions"]["count"], 0);
  ASSERT_EQ(j["pairing"]["extra_predictions"]["count"], 2) << "the two unanswerable demo items";
  EXPECT_EQ(j["pairing"]["extra_predictions"]["items"][0]["reason"], "no ground truth");
  EXPECT_EQ(j["pairing"]["extra_predictions"]["items"][1]["reason"], "no question");
  EXPECT_EQ(j["subtasks"].size(), 8u);
  EXPECT_EQ(j["questions"].size(), answered);
  EXPECT_TRUE(j["track1"]["overall"]["score"].is_null());
  EXPECT_NE(r.out.find("2 predictions without a ground-truth question"), std::string::npos) << r.out;
  const std::string html = test::read_text(dir / "report.html");
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_EQ(test::count_of(html, "<rect"), j["subtasks"].size());
  for (const OrderedJson& s : j["subtasks"]) EXPECT_NE(html.find(s["subtask"].get<std::string>()), std::string::npos);
}

TEST_F(EvalDemo, MissingPredictionsAreNamedAndTheGroundTruthScoresFullMarksAgainstItself) {
  OrderedJson results_json = OrderedJson::parse(test::read_text(results()));
  const std::string dropped = results_json[1]["question"];
  results_json.erase(1);
  const auto dir = test::scratch_dir("eval-demo-missing");
  test::write_bytes(dir / "partial.json", results_json.dump());
  const auto r = eval(dir / "partial.json", {"--json", (dir / "partial-eval.json").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("1 ground-truth questions without a prediction"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("#1 " + dropped.substr(0, 30)), std::string::npos) << r.out;
  const OrderedJson j = OrderedJson::parse(test::read_text(dir / "partial-eval.json"));
  EXPECT_EQ(j["pairing"]["missing_predictions"]["count"], 1);
  EXPECT_EQ(j["pairing"]["missing_predictions"]["items"][0]["question"], dropped);

  // gt.json is a results file too: every closed answer right, every open one word for word.
  const auto self = eval(test::demo_dir() / "gt.json", {"--json", (dir / "self.json").string()});
  ASSERT_EQ(self.exit_code, 0) << self.err;
  const OrderedJson s = OrderedJson::parse(test::read_text(dir / "self.json"));
  const OrderedJson& overall = s["track1"]["overall"];
  // Per frame 3 options and 4 yes/no questions, plus one yes/no-shaped planning question.
  EXPECT_EQ(overall["closed"], 4 * 7 + 1);
  EXPECT_EQ(overall["closed_correct"], overall["closed"]);
  EXPECT_EQ(s["misread_risk"], 0);
  for (const OrderedJson& q : s["questions"]) {
    if (q.contains("rouge_l")) {
      EXPECT_NEAR(q["rouge_l"].get<double>(), 1.0, 1e-9) << q["question"];
    }
  }
}

TEST(EvalCli, ExitCodesForBadFlagsInputsAndOutputs) {
  const auto dir = test::scratch_dir("eval-cli");
  const std::string gt = (test::demo_dir() / "gt.json").string();
  const auto eval = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {test::drivevqa_binary(), "eval"});
    return test::run_process(args);
  };
  const auto no_model = eval({"--predictions", gt, "--ground_truth", gt, "--judge_url", "http://127.0.0.1:1"});
  EXPECT_EQ(no_model.exit_code, 2);
  EXPECT_NE(no_model.err.find("--judge_url needs --judge_model"), std::string::npos) << no_model.err;
  EXPECT_EQ(eval({"--predictions", gt}).exit_code, 2);
  EXPECT_EQ(eval({"--predictions", gt, "--ground_truth", gt, "--judge_parallel", "0"}).exit_code, 2);

  const auto missing = eval({"--predictions", gt, "--ground_truth", (dir / "nope.json").string()});
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_NE(missing.err.find("nope.json"), std::string::npos) << missing.err;
  test::write_bytes(dir / "broken.json", "[{\"scene_token\": ");
  const auto broken = eval({"--predictions", (dir / "broken.json").string(), "--ground_truth", gt});
  EXPECT_EQ(broken.exit_code, 3);
  EXPECT_NE(broken.err.find("broken.json: not valid JSON"), std::string::npos) << broken.err;

  const auto no_folder = eval({"--predictions", gt, "--ground_truth", gt, "--json", (dir / "no/such/out.json").string()});
  EXPECT_EQ(no_folder.exit_code, 5) << no_folder.err;
  // A folder is never replaced by a file: refused with the command line (util/path_roles.h).
  EXPECT_EQ(eval({"--predictions", gt, "--ground_truth", gt, "--report", dir.string()}).exit_code, 2);

  // An output that is an input under another name is refused, and the input stays as it was.
  const auto predictions = dir / "predictions.json";
  std::filesystem::copy_file(gt, predictions);
  const std::string before = test::read_text(predictions);
  const auto aliased = eval({"--predictions", predictions.string(), "--ground_truth", gt, "--json",
                             (dir / "." / "predictions.json").string()});
  EXPECT_EQ(aliased.exit_code, 2);
  EXPECT_NE(aliased.err.find("same file as --predictions"), std::string::npos) << aliased.err;
  EXPECT_EQ(eval({"--predictions", predictions.string(), "--ground_truth", gt, "--report", gt}).exit_code, 2);
  EXPECT_EQ(test::read_text(predictions), before);
}

TEST(EvalCli, TheJudgeKeyIsNeverPrinted) {
  const std::string gt = (test::demo_dir() / "gt.json").string();
  ::setenv("DRIVEVQA_TEST_JUDGE_KEY", "sk-test-secret-4242", 1);
  // Nothing listens on port 1: the judge cannot be reached, which is an input error naming the URL.
  const auto r = test::run_process({test::drivevqa_binary(), "eval", "--predictions", gt, "--ground_truth", gt,
                                    "--judge_url", "http://127.0.0.1:1", "--judge_model", "judge",
                                    "--judge_api_key_env", "DRIVEVQA_TEST_JUDGE_KEY", "--judge_cache", "none"});
  ::unsetenv("DRIVEVQA_TEST_JUDGE_KEY");
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("127.0.0.1:1"), std::string::npos) << r.err;
  EXPECT_EQ((r.out + r.err).find("sk-test-secret-4242"), std::string::npos);
}

TEST(EvalDemoData, GroundTruthHasEveryAnswerableItemOfBothVariants) {
  const OrderedJson questions = OrderedJson::parse(test::read_text(test::demo_dir() / "questions.json"));
  const OrderedJson gt = OrderedJson::parse(test::read_text(test::demo_dir() / "gt.json"));
  ASSERT_EQ(gt.size(), questions.size() - 2);
  for (const OrderedJson& g : gt) {
    EXPECT_FALSE(g["answer"].get<std::string>().empty()) << g["question"];
    EXPECT_TRUE(g.contains("question"));
    EXPECT_EQ(g["img_paths"]["CAM_FRONT"].get<std::string>().find("missing_frame"), std::string::npos);
  }
  const auto dir = test::scratch_dir("eval-bench-demo");
  const auto r = test::run_process({test::drivevqa_binary(), "make-demo", "--out", dir.string(), "--benchmark"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const OrderedJson bench_gt = OrderedJson::parse(test::read_text(dir / "gt.json"));
  EXPECT_EQ(bench_gt.size(), OrderedJson::parse(test::read_text(dir / "questions.json")).size());
  EXPECT_EQ(bench_gt.size(), 80u);
  // Moving status: a vehicle driving in front is "Going ahead." (A), a parked car "Stopped." (C).
  EXPECT_EQ(bench_gt[0]["answer"], "A");
  EXPECT_NE(bench_gt[38]["question"].get<std::string>().find("moving status of object <c4,CAM_BACK_RIGHT"), std::string::npos);
  EXPECT_EQ(bench_gt[38]["answer"], "C");
}

}  // namespace
}  // namespace drivevqa
