// Few-shot examples from the knowledge base (--few_shot K): the K notes of the question's own
// subtask most similar to it, from any frame, never the question's own note, shown as text after
// the frame's shared prefix; and ask's earlier frames (--history).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <map>

#include "dataset/question_file.h"
#include "pipeline/kb_examples.h"
#include "prompt/few_shot_block.h"
#include "prompt/task_prompts.h"
#include "route/route.h"
#include "support/test_support.h"

namespace drivevqa {
namespace {

namespace fs = std::filesystem;
using OrderedJson = nlohmann::ordered_json;

OrderedJson note(const std::string& scene, const std::string& frame, const std::string& category, const std::string& q,
          const std::string& a) {
  return {{"scene_token", scene}, {"frame_token", frame}, {"category", category}, {"question", q}, {"answer", a}};
}

void write_kb(const fs::path& path, const OrderedJson& notes) { std::ofstream(path) << OrderedJson{{"annotations", notes}}.dump(1); }

const std::string kMovingMcq =
    "What is the moving status of object <c1,CAM_FRONT,812.4,540.0>? Please select the correct answer from the "
    "following options: A. Going ahead. B. Turn left. C. Stopped. D. Back up.";

// Perception MCQs at several distances from kMovingMcq, the question's own note (twice, once with
// other white space), an unanswered note, and the same text under other subtasks.
OrderedJson mcq_notes() {
  return OrderedJson::array(
      {note("s1", "f1", "perception", kMovingMcq, "A"),
       note("s3", "f7", "perception",
            "What is the moving status of object <c2,CAM_BACK,100.0,500.0>? Please select the correct answer from the "
            "following options: A. Stopped. B. Back up. C. Going ahead. D. Turn right.",
            "MID"),
       note("s3", "f8", "perception",
            "What is the colour of the traffic light? Please select the correct answer from the following options: "
            "A. Red. B. Green. C. Yellow. D. Off.",
            "FAR"),
       note("s4", "f9", "behavior", kMovingMcq, "BEHAVIOR"),
       note("s5", "f9", "corruption", kMovingMcq, "CORRUPTION"),
       note("s6", "f2", "perception", kMovingMcq, ""),
       note("s2", "f5", "perception",
            "What is the moving status of object <c3,CAM_FRONT,900.0,400.0>? Please select the correct answer from the "
            "following options: A. Going ahead. B. Turn left. C. Stopped. D. Back up.",
            "NEAR"),
       note("s1", "f1", "perception", "What  is the moving status of object <c1,CAM_FRONT,812.4,540.0>?\nPlease select the "
            "correct answer from the following options: A. Going ahead. B. Turn left. C. Stopped. D. Back up.", "A again")});
}

TEST(FewShotKb, ExamplesAreTheMostSimilarOfTheSameSubtaskAndNeverTheQuestionsOwnNote) {
  const fs::path dir = test::scratch_dir("few-shot-kb");
  write_kb(dir / "kb.json", mcq_notes());
  const auto kb = open_kb_index(dir / "kb.json", dir / "kb.sqlite", dir);
  const auto hits = kb->examples("Perception-MCQs", "s1", "f1", kMovingMcq, 3);
  ASSERT_EQ(hits.size(), 3u);
  EXPECT_EQ(hits[0].entry.answer, "NEAR");  // the same template and camera, another frame
  EXPECT_EQ(hits[1].entry.answer, "MID");
  EXPECT_EQ(hits[2].entry.answer, "FAR");
  EXPECT_LE(hits[0].score, hits[1].score);
  EXPECT_LE(hits[1].score, hits[2].score);
  for (const KbHit& h : hits) {
    EXPECT_EQ(kb_note_subtask(h.entry), "Perception-MCQs") << h.entry.answer;
    EXPECT_FALSE(h.entry.scene_token == "s1" && h.entry.frame_token == "f1") << "the question's own note is its answer";
  }
  // The same question from another frame is a fair example: its own note is only (scene, frame, question).
  const auto elsewhere = kb->examples("Perception-MCQs", "s9", "f99", kMovingMcq, 1);
  ASSERT_EQ(elsewhere.size(), 1u);
  EXPECT_EQ(elsewhere[0].entry.answer, "A");
  // Other subtasks get their own notes, text alike or not.
  const auto behavior = few_shot_examples(*kb, Subtask::kBehaviorMcq, "s1", "f1", kMovingMcq, 4);
  ASSERT_EQ(behavior.size(), 1u);
  EXPECT_EQ(behavior[0].answer, "BEHAVIOR");
  EXPECT_TRUE(few_shot_examples(*kb, Subtask::kPrediction, "s1", "f1", kMovingMcq, 4).empty()) << "no Prediction note";
}

// Prediction notes among many scene notes with the very question's text: those fill every term's
// whole-KB impact list, so only the Prediction group's own lists find the Prediction notes.
TEST(FewShotKb, KIsRespectedAndASmallSubtaskIsNotCrowdedOutByALargeOne) {
  const fs::path dir = test::scratch_dir("few-shot-crowd");
  const std::string question = "Would <c1,CAM_FRONT,700.0,500.0> be in the moving direction of the ego vehicle?";
  OrderedJson notes = OrderedJson::array();
  for (int i = 0; i < 300; ++i) {
    notes.push_back(note("crowd", "f" + std::to_string(i), "perception",
                         "Would <c2,CAM_FRONT,1.0,2.0> be in the moving direction of the ego vehicle?", "scene note"));
  }
  notes.push_back(note("p", "f1", "prediction", "Zebra?", "FILL"));  // no term in common: found only to fill up
  notes.push_back(note("p", "f2", "prediction", "Is <c2,CAM_BACK,3.0,4.0> a traffic sign?", "SOME"));
  notes.push_back(note("p", "f3", "prediction", "Would <c4,CAM_FRONT,5.0,6.0> be in the moving direction of the ego car?", "BEST"));
  write_kb(dir / "kb.json", notes);
  const auto kb = open_kb_index(dir / "kb.json", dir / "kb.sqlite", dir);
  const auto answers = [&](int k) {
    std::vector<std::string> out;
    for (const FewShotExample& e : few_shot_examples(*kb, Subtask::kPrediction, "q", "q", question, k)) out.push_back(e.answer);
    return out;
  };
  EXPECT_EQ(answers(1), std::vector<std::string>({"BEST"}));
  EXPECT_EQ(answers(2), std::vector<std::string>({"BEST", "SOME"}));
  EXPECT_EQ(answers(10), std::vector<std::string>({"BEST", "SOME", "FILL"})) << "fewer only when the KB has fewer";
  EXPECT_TRUE(answers(0).empty());
  EXPECT_EQ(kb->retrieve("unknown", "unknown", question, 1).at(0).entry.answer, "scene note") << "retrieval is unchanged";
}

TEST(FewShotKb, AnIndexWhoseNotesWereGroupedOtherwiseIsRebuiltNotTrusted) {
  const fs::path dir = test::scratch_dir("few-shot-groups");
  write_kb(dir / "kb.json", mcq_notes());
  const NoteGroup everything_one = [](const KbEntry&) { return std::string("one"); };
  EXPECT_TRUE(KbIndex::open(dir / "kb.json", dir / "kb.sqlite", dir, everything_one)->rebuilt());
  EXPECT_FALSE(KbIndex::open(dir / "kb.json", dir / "kb.sqlite", dir, everything_one)->rebuilt());
  const auto by_subtask = open_kb_index(dir / "kb.json", dir / "kb.sqlite", dir);
  EXPECT_TRUE(by_subtask->rebuilt());
  EXPECT_EQ(by_subtask->examples("Behavior-MCQs", "s1", "f1", kMovingMcq, 2).size(), 1u);
  EXPECT_FALSE(open_kb_index(dir / "kb.json", dir / "kb.sqlite", dir)->rebuilt());
}

TEST(UnitFewShot, TheBlockEndsWithTheMostSimilarAndKeepsObjectReferences) {
  EXPECT_EQ(few_shot_block({}), "");
  const std::string block = few_shot_block({{"Is <c1,CAM_FRONT,812.4,540.0> moving?", "Yes.\n  It is.\n"},
                                            {"What is  ahead?", "A car <__media__>."}});
  EXPECT_EQ(block,
            "Examples of similar questions with their answers:\n"
            "Question: What is ahead?\nAnswer: A car <image>.\n"
            "Question: Is <c1,CAM_FRONT,812.4,540.0> moving?\nAnswer: Yes. It is.\n");
}

TEST(UnitFewShot, ThePromptHoldsThemAfterTheSharedPrefixAndHintBeforeTheCloseUpsAndQuestion) {
  QuestionItem item;
  item.question = "What are the safe actions? <c1,CAM_FRONT,1.0,2.0>";
  item.images = {{"CAM_FRONT", "f.jpg"}, {"CAM_BACK", "b.jpg"}};
  const PromptSet prompts = default_prompts(64);
  const std::string examples = few_shot_block({{"Q1?", "A1."}});
  const std::vector<ObjectRef> close_ups = object_refs(item.question);
  const Subtask s = Subtask::kPlanningSceneDescription;  // it has a hint
  const std::string with = build_item_prompt(prompts, s, item, "NOTES\n", PromptLayout::kShared, "", close_ups, {}, examples).user;
  const std::string without = build_item_prompt(prompts, s, item, "NOTES\n", PromptLayout::kShared, "", close_ups).user;
  const size_t prefix = without.find("CAM_BACK: <__media__>\n") + std::string("CAM_BACK: <__media__>\n").size();
  EXPECT_EQ(with.substr(0, prefix), without.substr(0, prefix)) << "the frame's shared prefix is unchanged";
  const size_t at = with.find(examples);
  ASSERT_NE(at, std::string::npos) << with;
  EXPECT_GT(at, with.find(prompts.hints.at(s)));
  EXPECT_GT(at, with.find("NOTES"));
  EXPECT_LT(at, with.find("Close-up of c1"));
  EXPECT_EQ(with.substr(0, at) + with.substr(at + examples.size()), without);
  // The seed's layout keeps its order: context (now with the examples), then the images.
  const std::string seed = build_item_prompt(prompts, s, item, "", PromptLayout::kSeed, "", {}, {}, examples).user;
  EXPECT_LT(seed.find(examples), seed.find("CAM_FRONT: <__media__>"));
}

// --- runs on the demo, its ground truth as the knowledge base --------------------------------

struct FewShotDemoRun {
  int exit_code = 0;
  std::string err;
  nlohmann::json stats;
  fs::path prompts;
};

FewShotDemoRun run_few_shot_demo(const std::string& name, std::vector<std::string> extra) {
  const fs::path dir = test::scratch_dir(name);
  std::vector<std::string> argv = {test::drivevqa_binary(), "run", "--json_file", (test::demo_dir() / "questions.json").string(),
                                   "--image_base_dir", test::demo_dir().string(), "--output_file", (dir / "out.json").string(),
                                   "--model_7b", test::tiny_model_dir().string(), "--dtype", "fp16", "--max_new_tokens_cap", "2",
                                   "-t", "2", "--image_max_tokens", "16", "--stats_json", (dir / "stats.json").string(),
                                   "--dump_prompts", (dir / "prompts").string(), "--rag_mode", "off"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  const auto r = test::run_process(argv);
  FewShotDemoRun run{r.exit_code, r.err, {}, dir / "prompts"};
  if (r.exit_code == 0) run.stats = nlohmann::json::parse(test::read_text(dir / "stats.json"));
  return run;
}

std::string dumped(const fs::path& prompts, size_t i) {
  char name[32];
  std::snprintf(name, sizeof name, "%06zu.txt", i);
  return fs::exists(prompts / name) ? test::read_text(prompts / name) : "";
}

// Where the frame's shared prefix ends in a dumped prompt: after its last image line (no close-ups
// in these runs).
size_t prefix_end(const std::string& text) {
  const std::string marker = "<__media__>\n";
  const size_t at = text.rfind(marker);
  return at == std::string::npos ? std::string::npos : at + marker.size();
}

// The demo's items as run reads them (an item with a problem is never prepared, so never shown examples).
std::vector<QuestionItem> demo_items() {
  DatasetOptions options;
  options.image_base_dir = test::demo_dir();
  return read_question_file(test::demo_dir() / "questions.json", options);
}

// What each demo item's examples should be, computed in-process on the same index.
std::vector<std::vector<FewShotExample>> expected_examples(const fs::path& index, const std::vector<QuestionItem>& items,
                                                           const std::map<Subtask, int>& k_of) {
  const auto kb = open_kb_index(test::demo_dir() / "gt.json", index, index.parent_path());
  std::vector<std::vector<FewShotExample>> out;
  for (const QuestionItem& item : items) {
    const Subtask s = classify(item.category, item.question);
    const int k = k_of.count(s) ? k_of.at(s) : 0;
    out.push_back(k > 0 ? few_shot_examples(*kb, s, item.scene_token, item.frame_token, item.question, k)
                        : std::vector<FewShotExample>{});
  }
  return out;
}

TEST(FewShotRun, OnTheDemoEachQuestionGetsItsSubtasksExamplesAfterThePrefixStillEvaluatedOncePerFrame) {
  const fs::path index = test::scratch_dir("few-shot-index") / "kb.sqlite";
  const FewShotDemoRun plain = run_few_shot_demo("few-shot-off", {});
  const FewShotDemoRun shots = run_few_shot_demo("few-shot-on", {"--few_shot", "4", "--kb_file", (test::demo_dir() / "gt.json").string(),
                                                 "--kb_index", index.string()});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  ASSERT_EQ(shots.exit_code, 0) << shots.err;
  const std::vector<QuestionItem> items = demo_items();
  const OrderedJson truth = OrderedJson::parse(test::read_text(test::demo_dir() / "gt.json"));
  std::map<std::string, int> asked;  // how often a question's text is in the KB
  for (const OrderedJson& t : truth) ++asked[t["question"].get<std::string>()];
  std::map<Subtask, int> four;
  for (Subtask s : all_subtasks()) four[s] = 4;
  const auto expected = expected_examples(index, items, four);
  size_t shown = 0, short_of = 0, checked = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    if (!items[i].problem.empty()) continue;
    shown += expected[i].size();
    short_of += expected[i].size() < 4;
    const std::string with = dumped(shots.prompts, i), without = dumped(plain.prompts, i);
    if (with.empty()) continue;  // no readable image: no model answer
    ++checked;
    const size_t cut = prefix_end(with);
    ASSERT_NE(cut, std::string::npos) << with;
    EXPECT_EQ(with.substr(0, cut), without.substr(0, cut)) << "item " << i << ": the shared prefix changed";
    const std::string block = few_shot_block(expected[i]);
    ASSERT_FALSE(block.empty()) << "item " << i << ": the demo KB has notes of every subtask it asks";
    const size_t at = with.find(block);
    ASSERT_NE(at, std::string::npos) << "item " << i << "\n" << with;
    EXPECT_GE(at, cut);
    EXPECT_LT(at, with.rfind(items[i].question));
    if (asked[items[i].question] == 1) {
      EXPECT_EQ(block.find("Question: " + items[i].question), std::string::npos) << "item " << i << ": its own note";
    }
  }
  EXPECT_GT(checked, 50u);
  EXPECT_EQ(shots.stats["few_shot_examples"].get<size_t>(), shown);
  EXPECT_EQ(shots.stats["few_shot_short"].get<size_t>(), short_of);
  EXPECT_GT(short_of, 0u) << "the demo KB has four notes of some subtasks: three besides a question's own";
  EXPECT_EQ(shots.stats["prefix_evaluations"], shots.stats["frames"]);
  EXPECT_EQ(shots.stats["prefix_evaluations"], plain.stats["prefix_evaluations"]);
  EXPECT_EQ(shots.stats["prefix_tokens"], plain.stats["prefix_tokens"]);
  EXPECT_GT(shots.stats["suffix_tokens"].get<size_t>(), plain.stats["suffix_tokens"].get<size_t>());
  EXPECT_EQ(plain.stats["few_shot_examples"].get<size_t>(), 0u);
}

TEST(FewShotRun, APromptsFileSetsItPerSubtask) {
  const fs::path dir = test::scratch_dir("few-shot-prompts");
  std::ofstream(dir / "prompts.json") << R"({"few_shot": {"Prediction": 0, "Perception-MCQs": 1}})";
  const FewShotDemoRun run = run_few_shot_demo("few-shot-per-subtask", {"--few_shot", "2", "--kb_file", (test::demo_dir() / "gt.json").string(),
                                                        "--kb_index", (dir / "kb.sqlite").string(), "--prompts",
                                                        (dir / "prompts.json").string()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::vector<QuestionItem> items = demo_items();
  std::map<Subtask, int> k_of;
  for (Subtask s : all_subtasks()) k_of[s] = 2;
  k_of[Subtask::kPrediction] = 0;
  k_of[Subtask::kPerceptionMcq] = 1;
  const auto expected = expected_examples(dir / "kb.sqlite", items, k_of);
  std::map<Subtask, size_t> seen;
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string text = dumped(run.prompts, i);
    if (text.empty()) continue;
    const Subtask s = classify(items[i].category, items[i].question);
    size_t questions = 0;
    for (size_t at = text.find("\nQuestion: "); at != std::string::npos; at = text.find("\nQuestion: ", at + 1)) ++questions;
    EXPECT_EQ(questions, expected[i].size()) << "item " << i << " (" << subtask_name(s) << ")";
    EXPECT_EQ(text.find("Examples of similar questions") == std::string::npos, k_of[s] == 0) << "item " << i;
    seen[s] += 1;
  }
  EXPECT_GT(seen[Subtask::kPrediction], 0u);
  EXPECT_GT(seen[Subtask::kPerceptionMcq], 0u);
}

TEST(FewShotRun, WithoutAKbFileItIsAUsageError) {
  const fs::path dir = test::scratch_dir("few-shot-no-kb");
  std::ofstream(dir / "prompts.json") << R"({"few_shot": {"Prediction": 1}})";
  for (const std::vector<std::string>& extra : {std::vector<std::string>{"--few_shot", "1"},
                                                std::vector<std::string>{"--prompts", (dir / "prompts.json").string()}}) {
    const FewShotDemoRun run = run_few_shot_demo("few-shot-no-kb-run", extra);
    EXPECT_EQ(run.exit_code, 2) << run.err;
    EXPECT_NE(run.err.find("needs --kb_file"), std::string::npos) << run.err;
  }
  const std::string images = test::images_arg(test::first_frame_images());
  const auto ask = test::run_process({test::drivevqa_binary(), "ask", "--model", test::tiny_model_dir().string(), "--images",
                                      images, "--few_shot", "1", "What is ahead?"});
  EXPECT_EQ(ask.exit_code, 2) << ask.err;
  EXPECT_NE(ask.err.find("needs --kb_file"), std::string::npos) << ask.err;
}

// --- ask ------------------------------------------------------------------------------------

std::vector<std::string> few_shot_ask_args(const std::vector<std::string>& extra, const std::string& question) {
  const std::string images = test::images_arg(test::first_frame_images());
  std::vector<std::string> argv = {test::drivevqa_binary(), "ask", "--model", test::tiny_model_dir().string(), "--images",
                                   images, "--max_new_tokens", "2", "-t", "2", "--image_max_tokens", "16", "--show_prompt"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(question);
  return argv;
}

TEST(AskFewShot, TheExamplesComeAfterTheImagesBeforeTheQuestionAsRunShowsThem) {
  const fs::path dir = test::scratch_dir("ask-few-shot");
  const std::string question = "Would <c1,CAM_FRONT,700.0,500.0> be in the moving direction of the ego vehicle?";
  const auto r = test::run_process(few_shot_ask_args({"--few_shot", "2", "--kb_file", (test::demo_dir() / "gt.json").string(), "--kb_index",
                                             (dir / "kb.sqlite").string(), "--category", "prediction"},
                                            question));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto kb = open_kb_index(test::demo_dir() / "gt.json", dir / "kb.sqlite", dir);
  const auto examples = few_shot_examples(*kb, Subtask::kPrediction, "", "", question, 2);
  ASSERT_EQ(examples.size(), 2u);
  const std::string block = few_shot_block(examples);
  const size_t at = r.err.find(block);
  ASSERT_NE(at, std::string::npos) << r.err;
  EXPECT_GT(at, r.err.find("CAM_BACK_LEFT: <__media__>"));
  EXPECT_LT(at, r.err.rfind(question));
}

TEST(AskHistory, EarlierFramesComeOldestFirstWithRunsLabelsBeforeTheCurrentImages) {
  // Demo item 20 has two earlier key frames, the most recent first.
  const OrderedJson items = OrderedJson::parse(test::read_text(test::demo_dir() / "questions.json"));
  const OrderedJson& history = items[20]["history_frames"];
  ASSERT_EQ(history.size(), 2u);
  std::vector<std::string> frames;  // "front,back" per earlier frame, most recent first
  for (const auto& [token, cams] : history.items()) {
    frames.push_back((test::demo_dir() / cams["CAM_FRONT"].get<std::string>()).string() + "," +
                     (test::demo_dir() / cams["CAM_BACK"].get<std::string>()).string());
  }
  const std::vector<std::string> cams = {"--history_cameras", "CAM_FRONT,CAM_BACK"};
  std::vector<std::string> extra = cams;
  for (const std::string& f : frames) extra.insert(extra.end(), {"--history", f});
  const auto r = test::run_process(few_shot_ask_args(extra, "Is the ego vehicle moving?"));
  ASSERT_EQ(r.exit_code, 0) << r.err;  // the engine takes one image per marker: the counts agree
  EXPECT_NE(r.err.find("<|im_start|>user\n"
                       "CAM_FRONT, 1.0 s earlier: <__media__>\nCAM_BACK, 1.0 s earlier: <__media__>\n"
                       "CAM_FRONT, 0.5 s earlier: <__media__>\nCAM_BACK, 0.5 s earlier: <__media__>\n"
                       "CAM_FRONT: <__media__>\n"),
            std::string::npos)
      << r.err;
  // Images load in the prompt's order, oldest first: with both frames unreadable, the oldest is named.
  std::vector<std::string> missing = cams;
  for (const char* f : {"/nonexistent/recent_front.jpg,/nonexistent/recent_back.jpg",
                        "/nonexistent/oldest_front.jpg,/nonexistent/oldest_back.jpg"}) {
    missing.insert(missing.end(), {"--history", f});
  }
  const auto bad = test::run_process(few_shot_ask_args(missing, "Is the ego vehicle moving?"));
  EXPECT_EQ(bad.exit_code, 3) << bad.err;
  EXPECT_NE(bad.err.find("oldest_front.jpg"), std::string::npos) << bad.err;
  // Each earlier frame has one image per history camera.
  const auto wrong = test::run_process(few_shot_ask_args({"--history", frames[0], "--history", "only_one.jpg"}, "Is it safe?"));
  EXPECT_EQ(wrong.exit_code, 2) << wrong.err;
  EXPECT_NE(wrong.err.find("--history_cameras"), std::string::npos) << wrong.err;
}

}  // namespace
}  // namespace drivevqa
