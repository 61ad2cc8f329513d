// Earlier key frames (--history_frames): read from the item's history_frames, shown oldest first
// before the current images with their time offsets, and encoded once per run.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>

#include "dataset/question_file.h"
#include "prompt/task_prompts.h"
#include "support/test_support.h"

namespace drivevqa {
namespace {

namespace fs = std::filesystem;

std::vector<QuestionItem> parse(const std::string& history_json) {
  const std::string text = R"([{"question": "Is it safe?", "img_paths": {"CAM_FRONT": "f.jpg"}, "history_frames": )" +
                           history_json + "}]";
  DatasetOptions options;
  options.check_images = false;
  return parse_question_list(text, "q.json", options);
}

TEST(UnitHistoryFrames, TheListIsReadMostRecentFirstWithItsCamerasInCameraOrder) {
  const auto items = parse(R"({"t1": {"CAM_BACK": "b1.jpg", "CAM_FRONT": "f1.jpg"}, "t2": {"CAM_FRONT": "f2.jpg"}})");
  ASSERT_EQ(items[0].history.size(), 2u);
  EXPECT_EQ(items[0].history[0].frame_token, "t1");
  ASSERT_EQ(items[0].history[0].images.size(), 2u);
  EXPECT_EQ(items[0].history[0].images[0].camera, "CAM_FRONT");
  EXPECT_EQ(items[0].history[0].images[1].camera, "CAM_BACK");
  EXPECT_EQ(items[0].history[1].images[0].path, fs::path("f2.jpg"));
  EXPECT_TRUE(items[0].history_warnings.empty());
  EXPECT_TRUE(items[0].problem.empty());
}

TEST(UnitHistoryFrames, AbsentOrMalformedHistoryNeverFailsTheItem) {
  EXPECT_TRUE(parse("null")[0].history.empty());
  for (const char* bad : {R"([1, 2])", R"("x")", R"(3)"}) {
    const auto items = parse(bad);
    EXPECT_TRUE(items[0].history.empty()) << bad;
    EXPECT_EQ(items[0].history_warnings.size(), 1u) << bad;
    EXPECT_TRUE(items[0].problem.empty()) << bad;
  }
  const auto mixed = parse(R"({"t1": 5, "t2": {"CAM_FRONT": 7, "CAM_BACK": "b.jpg"}})");
  ASSERT_EQ(mixed[0].history.size(), 1u) << "a frame that is not an object is skipped";
  EXPECT_EQ(mixed[0].history[0].images.size(), 1u) << "a path that is not a string is skipped";
  std::string many = "{";
  for (int i = 0; i < 40; ++i) many += (i ? "," : "") + std::string("\"t") + std::to_string(i) + R"(": {"CAM_FRONT": "f.jpg"})";
  const auto long_list = parse(many + "}");
  EXPECT_EQ(long_list[0].history.size(), kMaxHistoryFrames);
  EXPECT_EQ(long_list[0].history_warnings.size(), 1u);
}

TEST(UnitHistoryFrames, ThePromptShowsEarlierFramesOldestFirstBeforeTheCurrentImages) {
  QuestionItem item;
  item.question = "Is it safe?";
  item.images = {{"CAM_FRONT", "f.jpg"}, {"CAM_BACK", "b.jpg"}};
  const std::vector<HistoryView> history = {{1.0, {"CAM_FRONT"}}, {0.5, {"CAM_FRONT", "CAM_BACK"}}};
  const ChatPrompt p = build_item_prompt(default_prompts(64), Subtask::kPrediction, item, "", PromptLayout::kShared, "", {}, history);
  const size_t older = p.user.find("CAM_FRONT, 1.0 s earlier: <__media__>\n");
  const size_t newer = p.user.find("CAM_FRONT, 0.5 s earlier: <__media__>\nCAM_BACK, 0.5 s earlier: <__media__>\n");
  const size_t now = p.user.find("CAM_FRONT: <__media__>\nCAM_BACK: <__media__>\n");
  ASSERT_NE(older, std::string::npos) << p.user;
  ASSERT_NE(newer, std::string::npos) << p.user;
  ASSERT_NE(now, std::string::npos) << p.user;
  EXPECT_LT(older, newer);
  EXPECT_LT(newer, now);
  EXPECT_EQ(p.user.rfind("Is it safe?"), p.user.size() - std::string("Is it safe?").size());
}

struct HistoryRun {
  nlohmann::json stats;
  fs::path prompts;
  std::string err;
};

HistoryRun run_history_demo(const std::string& name, const fs::path& questions, std::vector<std::string> extra) {
  const fs::path dir = test::scratch_dir(name);
  HistoryRun run{{}, dir / "prompts", ""};
  std::vector<std::string> argv = {test::drivevqa_binary(), "run", "--json_file", questions.string(), "--image_base_dir",
                                   test::demo_dir().string(), "--output_file", (dir / "out.json").string(), "--model_7b",
                                   test::tiny_model_dir().string(), "--dtype", "fp16", "--max_new_tokens_cap", "2", "-t", "2",
                                   "--image_max_tokens", "16", "--stats_json", (dir / "stats.json").string(),
                                   "--dump_prompts", run.prompts.string()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  const auto r = test::run_process(argv);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  run.stats = nlohmann::json::parse(test::read_text(dir / "stats.json"));
  run.err = r.err;
  return run;
}

TEST(HistoryFrames, OnTheDemoOrderLabelsAndFewerThanAskedAndEachImageEncodedOnce) {
  const fs::path questions = test::demo_dir() / "questions.json";
  const auto items = nlohmann::json::parse(test::read_text(questions));
  const HistoryRun plain = run_history_demo("history-off", questions, {});
  const HistoryRun history = run_history_demo("history-on", questions, {"--history_frames", "2"});
  // Per scene, the demo's frames have 1 and 2 earlier frames; one key frame before the first is
  // history only. Every other history image is an earlier frame's current one, already encoded.
  EXPECT_EQ(history.stats["images_encoded"].get<int>(), plain.stats["images_encoded"].get<int>() + 2);
  EXPECT_EQ(history.stats["images_decoded"].get<int>(), plain.stats["images_decoded"].get<int>() + 2);
  EXPECT_EQ(history.stats["prefix_evaluations"], history.stats["frames"]);
  size_t one = 0, two = 0, none = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "%06zu.txt", i);
    if (!fs::exists(history.prompts / name)) continue;  // an item without a model answer
    const std::string text = test::read_text(history.prompts / name);
    const size_t listed = items[i].contains("history_frames") ? items[i]["history_frames"].size() : 0;
    EXPECT_EQ(test::count_of(text, " s earlier: "), std::min<size_t>(listed, 2)) << "item " << i;
    if (listed >= 2) {
      EXPECT_LT(text.find("CAM_FRONT, 1.0 s earlier"), text.find("CAM_FRONT, 0.5 s earlier")) << "item " << i;
      ++two;
    } else if (listed == 1) {
      EXPECT_NE(text.find("CAM_FRONT, 0.5 s earlier"), std::string::npos) << "item " << i;
      ++one;
    } else {
      ++none;
    }
    if (listed > 0) EXPECT_LT(text.rfind(" s earlier: "), text.find("CAM_FRONT: ")) << "history comes before the current images";
  }
  EXPECT_GT(one, 0u);
  EXPECT_GT(two, 0u);
  EXPECT_GT(none, 0u) << "the demo's broken items carry no history";
}

TEST(HistoryFrames, OtherCamerasAndAMissingHistoryImageIsSkippedWithAWarning) {
  const fs::path dir = test::scratch_dir("history-missing");
  auto items = nlohmann::json::parse(test::read_text(test::demo_dir() / "questions.json"));
  nlohmann::json item = items[20];
  ASSERT_EQ(item["history_frames"].size(), 2u);
  auto& newest = item["history_frames"].begin().value();
  newest["CAM_BACK"] = "samples/CAM_BACK/no_such_file.jpg";
  std::ofstream(dir / "q.json") << nlohmann::json::array({item}).dump();
  const HistoryRun run = run_history_demo("history-cameras", dir / "q.json", {"--history_frames", "2", "--history_cameras", "CAM_FRONT,CAM_BACK"});
  const std::string text = test::read_text(run.prompts / "000000.txt");
  EXPECT_NE(text.find("CAM_BACK, 1.0 s earlier"), std::string::npos) << text;
  EXPECT_EQ(text.find("CAM_BACK, 0.5 s earlier"), std::string::npos) << text;
  EXPECT_NE(text.find("CAM_FRONT, 0.5 s earlier"), std::string::npos) << text;
  EXPECT_NE(run.err.find("history CAM_BACK image skipped"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace drivevqa
