// Subtask classification and the routing table.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <random>
#include <regex>

#include "route/route.h"
#include "route_cases.h"
#include "support/test_support.h"
#include "util/error.h"

namespace drivevqa {
namespace {

constexpr char kObj[] = "<c1,CAM_FRONT,812.4,540.0>";

TEST(Route, SeedRulesAndAdditions) {
  const std::string o = kObj;
  const std::vector<std::pair<std::pair<std::string, std::string>, Subtask>> cases = {
      {{"perception", "What is the moving status of object " + o + "? Please select the correct answer from the following options: A. Going ahead. B. Turn left. C. Stopped. D. Back up."}, Subtask::kPerceptionMcq},
      {{"perception", "What is the visual description of " + o + "?"}, Subtask::kPerceptionObjectDescription},
      {{"perception", "What are the important objects in the current scene? Those objects will be considered for the future reasoning and driving decision."}, Subtask::kPerceptionSceneDescription},
      {{"Perception", "WHAT IS THE VISUAL DESCRIPTION OF <C2,CAM_BACK,1088.3,497.5>?"}, Subtask::kPerceptionObjectDescription},
      {{"perception", "Which option fits? A. Yes B. No"}, Subtask::kPerceptionMcq},
      {{"prediction", "Would " + o + " be in the moving direction of the ego vehicle?"}, Subtask::kPrediction},
      {{"prediction", "What object should the ego vehicle notice first when the ego vehicle is getting to the next possible location?"}, Subtask::kPrediction},
      {{"planning", "What actions could the ego vehicle take based on " + o + "? Why take this action and what's the probability?"}, Subtask::kPlanningObjectDescription},
      {{"planning", "What actions taken by the ego vehicle can lead to a collision with " + o + "?"}, Subtask::kPlanningObjectDescription},
      {{"planning", "Based on the observation of " + o + ", what actions may " + o + " take?"}, Subtask::kPlanningObjectDescription},
      {{"planning", "What are the safe actions of the ego vehicle?"}, Subtask::kPlanningSceneDescription},
      {{"planning", "What's your comment on this scene?"}, Subtask::kPlanningSceneDescription},
      {{"planning", "Based on the current scene, what should the ego vehicle do?"}, Subtask::kPlanningSceneDescription},
      {{"corruption", "What's the current type of corruption? Please select the correct answer from the following options: A. Fog. B. Snow. C. Saturate. D. ZoomBlur. E. WaterSplashCorruption"}, Subtask::kCorruptionMcq},
      {{"behavior", "Predict the behavior of the ego vehicle. Please select the correct answer from the following options: A. x B. y"}, Subtask::kBehaviorMcq},
      {{"", "What are the important objects in the current scene?"}, Subtask::kPerceptionSceneDescription},
  };
  for (const auto& [input, expected] : cases) {
    EXPECT_EQ(classify(input.first, input.second), expected) << input.first << ": " << input.second;
  }
}

TEST(Route, EveryTemplateAndRareRewording) {
  size_t n = 0;
  for (const test::RouteCase& c : test::kRouteCases) {
    EXPECT_EQ(subtask_name(classify(c.category, c.question)), subtask_name(c.expected)) << c.category << ": " << c.question;
    ++n;
  }
  EXPECT_GE(n, 60u);
  // The model follows the seed's table for each case.
  RoutingTable table;
  for (const test::RouteCase& c : test::kRouteCases) {
    const bool big = c.expected == Subtask::kPerceptionSceneDescription || c.expected == Subtask::kPlanningObjectDescription ||
                     c.expected == Subtask::kPlanningSceneDescription;
    EXPECT_EQ(table.model_for(classify(c.category, c.question)), big ? ModelSize::k72B : ModelSize::k7B) << c.question;
  }
}

TEST(Route, DefaultTableIsTheSeedsAndOverridesApply) {
  RoutingTable table;
  EXPECT_EQ(table.model_for(Subtask::kPerceptionMcq), ModelSize::k7B);
  EXPECT_EQ(table.model_for(Subtask::kPerceptionObjectDescription), ModelSize::k7B);
  EXPECT_EQ(table.model_for(Subtask::kPrediction), ModelSize::k7B);
  EXPECT_EQ(table.model_for(Subtask::kCorruptionMcq), ModelSize::k7B);
  EXPECT_EQ(table.model_for(Subtask::kBehaviorMcq), ModelSize::k7B);
  EXPECT_EQ(table.model_for(Subtask::kPerceptionSceneDescription), ModelSize::k72B);
  EXPECT_EQ(table.model_for(Subtask::kPlanningObjectDescription), ModelSize::k72B);
  EXPECT_EQ(table.model_for(Subtask::kPlanningSceneDescription), ModelSize::k72B);
  table.apply_override("Prediction=72B");
  EXPECT_EQ(table.model_for(Subtask::kPrediction), ModelSize::k72B);
  EXPECT_THROW(table.apply_override("Prediction"), UsageError);
  EXPECT_THROW(table.apply_override("Nope=7B"), UsageError);
  EXPECT_THROW(table.apply_override("Prediction=13B"), UsageError);
}

// The seed's expressions, for comparison only, on short strings (std::regex recurses per character).
const std::regex kSeedOptionLabel(R"((^|[^a-z0-9])[a-d]\.\s)");
const std::regex kSeedVisualDescription(R"(what is the visual description of <c\d+,\s*cam_)");

TEST(Route, ScannersMatchTheSeedsRegexOnEveryShortString) {
  std::mt19937 rng(12);
  const std::string alphabet = "abcd.e <>c0123,_ \t\nCAMwhatisvdescrpton\r\v\fz9\xe9";
  const std::string label_chars = "abcd. \t";  // drawn half of the time, so that labels occur often
  const auto draw = [&](const std::string& from) { return from[std::uniform_int_distribution<size_t>(0, from.size() - 1)(rng)]; };
  size_t labels = 0;
  for (int n = 0; n < 200000; ++n) {
    std::string s(std::uniform_int_distribution<size_t>(0, 12)(rng), ' ');
    for (char& c : s) c = draw(rng() % 2 ? alphabet : label_chars);
    const bool expected = std::regex_search(s, kSeedOptionLabel);
    ASSERT_EQ(has_option_label(s), expected) << '"' << s << '"';
    ASSERT_EQ(asks_visual_description(s), std::regex_search(s, kSeedVisualDescription)) << '"' << s << '"';
    labels += expected ? 1 : 0;
  }
  EXPECT_GT(labels, 1000u);  // the strings reach both answers
  // The visual-description pattern, its parts each present or not, then edited by a character or
  // two, after some pieces: matches and near misses.
  const std::string edit_chars = "0123456789,<c_amw \t\n\f.";
  const std::vector<std::string> pieces = {"", "x", "a. ", "<c1,", "what is the visual description of ", " "};
  size_t described = 0;
  for (int n = 0; n < 50000; ++n) {
    std::string s = pieces[rng() % pieces.size()] + pieces[rng() % pieces.size()] + "what is the visual description of <c";
    s += std::string(rng() % 4, draw("0123456789"));
    if (rng() % 4) s += ',';
    s += std::string(rng() % 3, draw(" \t\n\v\f\r"));
    const char* tails[] = {"cam_", "cam_front", "cam", "CAM_", "cam-", ""};
    s += tails[rng() % 6];
    for (size_t edits = rng() % 3; edits > 0 && !s.empty(); --edits) {
      const size_t at = std::uniform_int_distribution<size_t>(0, s.size() - 1)(rng);
      switch (rng() % 3) {
        case 0: s.erase(at, 1); break;
        case 1: s.insert(s.begin() + static_cast<std::ptrdiff_t>(at), draw(edit_chars)); break;
        default: s[at] = draw(edit_chars);
      }
    }
    const bool expected = std::regex_search(s, kSeedVisualDescription);
    ASSERT_EQ(asks_visual_description(s), expected) << '"' << s << '"';
    ASSERT_EQ(has_option_label(s), std::regex_search(s, kSeedOptionLabel)) << '"' << s << '"';
    described += expected ? 1 : 0;
  }
  EXPECT_GT(described, 2000u);  // both answers are reached often
  EXPECT_LT(described, 45000u);
}

// An object reference of `length` characters: "<c1,CAM_FRONT,812.4,540.0,540.0,...>".
std::string long_object_ref(size_t length) {
  std::string ref = "<c1,CAM_FRONT,812.4";
  while (ref.size() + 7 < length) ref += ",540.0";
  return ref + ">";
}

TEST(Route, LongObjectReferencesAreClassified) {
  const std::string ref = long_object_ref(30000);
  ASSERT_GE(ref.size(), 29990u);
  EXPECT_EQ(classify("perception", "What is the visual description of " + ref + "?"), Subtask::kPerceptionObjectDescription);
  EXPECT_EQ(classify("planning", "What actions could the ego vehicle take based on " + ref + "?"),
            Subtask::kPlanningObjectDescription);
  const std::string digits(30000, '7');
  EXPECT_EQ(classify("perception", "What is the visual description of <c" + digits + ", CAM_FRONT>?"),
            Subtask::kPerceptionObjectDescription);
  EXPECT_EQ(classify("perception", "What is the visual description of <c" + digits + ">?"),
            Subtask::kPerceptionSceneDescription);
  EXPECT_EQ(classify("perception", "What is the visual description of <c" + digits + ">? A. x B. y"), Subtask::kPerceptionMcq);
}

TEST(Route, TenMegabyteQuestionsAreClassifiedInLinearTime) {
  constexpr size_t kSize = 10u << 20;
  const auto repeat = [](const std::string& unit) {
    std::string s;
    s.reserve(kSize + unit.size());
    while (s.size() < kSize) s += unit;
    return s;
  };
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(classify("perception", repeat("what is the visual description of <c1")), Subtask::kPerceptionSceneDescription);
  EXPECT_EQ(classify("perception", "What is the visual description of <c" + repeat("1234567890") + ",cam_front>"),
            Subtask::kPerceptionObjectDescription);
  EXPECT_EQ(classify("perception", repeat("xa.ya.")), Subtask::kPerceptionSceneDescription);
  EXPECT_EQ(classify("planning", repeat("based on <c")), Subtask::kPlanningSceneDescription);
  EXPECT_EQ(classify("prediction", repeat("x")), Subtask::kPrediction);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 5.0);  // ~0.1 s in a release build; a quadratic scan would take hours
}

TEST(Route, RouteCommandTakesALongObjectReference) {
  const auto dir = test::scratch_dir("route-long-ref");
  nlohmann::json items = nlohmann::json::array();
  const auto item = [](const std::string& question) {
    return nlohmann::json{{"scene_token", "s"}, {"frame_token", "f"}, {"category", "perception"}, {"question", question},
                          {"img_paths", {{"CAM_FRONT", "samples/CAM_FRONT/x.jpg"}}}};
  };
  items.push_back(item("What is the visual description of " + long_object_ref(30000) + "?"));
  items.push_back(item("What is the visual description of <c" + std::string(15000, '3') + ",CAM_BACK>?"));
  test::write_bytes(dir / "q.json", items.dump());
  const auto r = test::run_process({test::drivevqa_binary(), "route", "--json_file", (dir / "q.json").string(),
                                    "--output_file", (dir / "routed.json").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto routed = nlohmann::json::parse(test::read_text(dir / "routed.json"));
  ASSERT_EQ(routed.size(), 2u);
  for (const auto& out : routed) EXPECT_EQ(out.at("subtask"), "Perception-VQAs-Object-Description");
  EXPECT_NE(r.out.find("Perception-VQAs-Object-Description / 7B"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace drivevqa
