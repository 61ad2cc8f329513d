// Object close-ups (--object_crops): references parsed from questions, crops cut from the original
// camera image with a marker at the object's point, and runs that keep the frame's prefix shared.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <random>
#include <set>
#include <tuple>

#include "dataset/object_refs.h"
#include "engine/image.h"
#include "support/test_support.h"
#include "util/error.h"
#include "visual/object_crop.h"

namespace drivevqa {
namespace {

namespace fs = std::filesystem;


bool same_pixel_at(const RgbImage& a, int ax, int ay, const RgbImage& b, int bx, int by) {
  return std::equal(test::pixel(a, ax, ay), test::pixel(a, ax, ay) + 3, test::pixel(b, bx, by));
}

// What the marker did to `crop`, whose window starts at (left, top) of `original`: the centroid of
// the changed pixels within the ring's reach of (cx, cy), and whether the ring's inside is untouched.
struct MarkerFound {
  double x = 0, y = 0;
  size_t changed = 0;
  bool inside_untouched = true;
};

MarkerFound find_marker(const RgbImage& crop, const RgbImage& original, int left, int top, int cx, int cy) {
  const MarkerStyle s = marker_style(std::min(crop.width, crop.height));
  const int reach = s.radius + s.ring + s.outline;
  const double inside = s.radius - s.ring / 2.0 - s.outline - 1;
  MarkerFound f;
  for (int y = std::max(0, cy - reach); y <= std::min(crop.height - 1, cy + reach); ++y) {
    for (int x = std::max(0, cx - reach); x <= std::min(crop.width - 1, cx + reach); ++x) {
      const bool changed = !same_pixel_at(crop, x, y, original, left + x, top + y);
      if (std::hypot(x - cx, y - cy) < inside && changed) f.inside_untouched = false;
      if (!changed) continue;
      f.x += x, f.y += y;
      ++f.changed;
    }
  }
  if (f.changed) f.x /= static_cast<double>(f.changed), f.y /= static_cast<double>(f.changed);
  return f;
}

TEST(UnitObjectRefs, ReferencesAreReadInOrderOnceEach) {
  const auto refs = object_refs("Would <c1,CAM_FRONT,812.4,540.0> take <c3,CAM_BACK_LEFT,12,899.5> and "
                                "<c1,CAM_FRONT,812.4,540.0> into account?");
  ASSERT_EQ(refs.size(), 2u);
  EXPECT_EQ(refs[0].label, "c1");
  EXPECT_EQ(refs[0].number, 1);
  EXPECT_EQ(refs[0].camera, "CAM_FRONT");
  EXPECT_DOUBLE_EQ(refs[0].x, 812.4);
  EXPECT_DOUBLE_EQ(refs[0].y, 540.0);
  EXPECT_EQ(refs[1].label, "c3");
  EXPECT_EQ(refs[1].camera, "CAM_BACK_LEFT");
  EXPECT_DOUBLE_EQ(refs[1].y, 899.5);
}

TEST(UnitObjectRefs, AnythingElseIsPlainText) {
  for (const char* text : {"<c1,CAM_FRONT,812.4>", "<c1,CAM_FRONT,812.4,540,7>", "<x1,CAM_FRONT,1,2>", "<c,CAM_FRONT,1,2>",
                           "<c1,cam_front,1,2>", "<c1,CAM_FRONT,1e999,2>", "<c1,CAM_FRONT,nan,2>", "<c1,CAM_FRONT,1,2",
                           "<c1, CAM_FRONT,1,2>", "<c-1,CAM_FRONT,1,2>", "<>", "<<<", "", "<c1,,1,2>"}) {
    EXPECT_TRUE(object_refs(text).empty()) << text;
  }
  EXPECT_EQ(object_refs("a < b and <c2,CAM_BACK,1,2>").size(), 1u) << "a stray '<' does not hide a reference";
  EXPECT_TRUE(object_refs(std::string(100000, '<')).empty());
}

TEST(UnitObjectRefs, PointsScaleToTheImageAndNormalisedOnesToo) {
  const ObjectRef pixel_ref = object_refs("<c1,CAM_FRONT,800,450>").at(0);
  const PixelPoint half = point_in_image(pixel_ref, 800, 450);
  EXPECT_DOUBLE_EQ(half.x, 400);
  EXPECT_DOUBLE_EQ(half.y, 225);
  const ObjectRef normalised = object_refs("<c1,CAM_FRONT,0.25,0.5>").at(0);
  const PixelPoint p = point_in_image(normalised, 1600, 900);
  EXPECT_DOUBLE_EQ(p.x, 400);
  EXPECT_DOUBLE_EQ(p.y, 450);
}

TEST(UnitObjectCrop, TheCropIsTheWindowAroundThePointWithTheMarkerOnIt) {
  const RgbImage original = test::dark_noise_image(1600, 900, 7);
  const ObjectRef ref = object_refs("<c1,CAM_FRONT,812.4,540.0>").at(0);
  const ObjectCrop crop = crop_object(original, ref, 448);
  EXPECT_EQ(crop.image.width, 448);
  EXPECT_EQ(crop.image.height, 448);
  EXPECT_EQ(crop.left, 812 - 224);
  EXPECT_EQ(crop.top, 540 - 224);
  EXPECT_EQ(crop.marker_x, 224);
  EXPECT_EQ(crop.marker_y, 224);
  const MarkerFound m = find_marker(crop.image, original, crop.left, crop.top, 224, 224);
  ASSERT_GT(m.changed, 0u);
  EXPECT_NEAR(m.x, 224, 1);
  EXPECT_NEAR(m.y, 224, 1);
  EXPECT_TRUE(m.inside_untouched);
  // Far from the marker and its label, the crop is the original's pixels.
  for (int y = 300; y < 448; y += 7)
    for (int x = 0; x < 150; x += 5) ASSERT_TRUE(same_pixel_at(crop.image, x, y, original, crop.left + x, crop.top + y));
}

TEST(UnitObjectCrop, AtTheBordersTheWindowStaysInsideAndTheMarkerOnThePoint) {
  const RgbImage original = test::dark_noise_image(1600, 900, 8);
  for (const auto& [x, y] : std::vector<std::pair<double, double>>{{0, 0}, {1599.9, 899.9}, {3, 880}, {1590, 10}}) {
    const ObjectRef ref = object_refs("<c2,CAM_BACK," + std::to_string(x) + "," + std::to_string(y) + ">").at(0);
    const ObjectCrop crop = crop_object(original, ref, 448);
    EXPECT_GE(crop.left, 0);
    EXPECT_GE(crop.top, 0);
    EXPECT_LE(crop.left + crop.image.width, 1600);
    EXPECT_LE(crop.top + crop.image.height, 900);
    EXPECT_EQ(crop.left + crop.marker_x, static_cast<int>(x));
    EXPECT_EQ(crop.top + crop.marker_y, static_cast<int>(y));
  }
  const RgbImage small = test::dark_noise_image(100, 60, 9);
  const ObjectCrop whole = crop_object(small, object_refs("<c4,CAM_FRONT,800,450>").at(0), 448);
  EXPECT_EQ(whole.image.width, 100) << "a window larger than the image is the image";
  EXPECT_EQ(whole.image.height, 60);
  EXPECT_EQ(whole.marker_x, 50);
  EXPECT_EQ(whole.marker_y, 30);
}

TEST(UnitObjectCrop, APointOutsideTheImageIsAnInputErrorNamingTheObject) {
  const RgbImage original = test::dark_noise_image(1600, 900, 10);
  for (const char* text : {"<c5,CAM_FRONT,1600,10>", "<c5,CAM_FRONT,10,900.5>", "<c5,CAM_FRONT,-3,10>"}) {
    try {
      crop_object(original, object_refs(text).at(0), 448);
      ADD_FAILURE() << text << " was cut";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("object c5"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("outside"), std::string::npos) << e.what();
    }
  }
}

TEST(UnitObjectCrop, EachObjectHasItsOwnColour) {
  std::set<std::tuple<int, int, int>> colours;
  for (int n = 1; n <= 6; ++n) {
    const MarkerColor c = marker_color(n);
    colours.insert({c.r, c.g, c.b});
  }
  EXPECT_EQ(colours.size(), 6u);
}

// ---- runs on the demo ----

struct CloseUpDemoRun {
  test::ProcessResult process;
  nlohmann::json results, stats;
};

CloseUpDemoRun run_demo_items(const fs::path& dir, const fs::path& questions, std::vector<std::string> extra) {
  std::vector<std::string> argv = {test::drivevqa_binary(), "run", "--json_file", questions.string(), "--image_base_dir",
                                   test::demo_dir().string(), "--output_file", (dir / "out.json").string(), "--model_7b",
                                   test::tiny_model_dir().string(), "--dtype", "fp16", "--max_new_tokens_cap", "4", "-t", "2",
                                   "--stats_json", (dir / "stats.json").string()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  CloseUpDemoRun run;
  run.process = test::run_process(argv);
  EXPECT_EQ(run.process.exit_code, 0) << run.process.err;
  run.results = nlohmann::json::parse(test::read_text(dir / "out.json"));
  run.stats = nlohmann::json::parse(test::read_text(dir / "stats.json"));
  return run;
}

TEST(CloseUps, TheCloseUpHandedToTheEngineIsTheOriginalWindowWithTheMarkerOnThePoint) {
  const fs::path dir = test::scratch_dir("close-up-pixels"), prompts = dir / "prompts";
  const CloseUpDemoRun run = run_demo_items(dir, test::demo_dir() / "questions.json",
                                 {"--limit", "1", "--object_crops", "--image_max_tokens", "32", "--dump_prompts", prompts.string()});
  const auto items = nlohmann::json::parse(test::read_text(test::demo_dir() / "questions.json"));
  ASSERT_NE(items[0]["question"].get<std::string>().find("<c1,CAM_FRONT,812.4,540.0>"), std::string::npos);
  const RgbImage original = load_image_file(test::demo_dir() / items[0]["img_paths"]["CAM_FRONT"].get<std::string>());
  const std::string png = test::read_text(prompts / "000000-c1.png");
  const RgbImage sent = decode_image(reinterpret_cast<const uint8_t*>(png.data()), png.size(), "close-up");
  ASSERT_EQ(sent.width, 448);
  ASSERT_EQ(sent.height, 448);
  // The window around (812.4, 540.0) in the 1600x900 camera image, scaled if the demo's differs.
  const int px = static_cast<int>(812.4 * original.width / 1600), py = static_cast<int>(540.0 * original.height / 900);
  const int left = std::clamp(px - 224, 0, original.width - 448), top = std::clamp(py - 224, 0, original.height - 448);
  const MarkerFound m = find_marker(sent, original, left, top, px - left, py - top);
  ASSERT_GT(m.changed, 0u);
  EXPECT_NEAR(m.x, px - left, 1);
  EXPECT_NEAR(m.y, py - top, 1);
  EXPECT_TRUE(m.inside_untouched);
  size_t same = 0, compared = 0;
  for (int y = 300; y < 448; y += 3)
    for (int x = 0; x < 150; x += 3, ++compared) same += same_pixel_at(sent, x, y, original, left + x, top + y);
  EXPECT_EQ(same, compared) << "away from the marker the close-up is the original's pixels";
  EXPECT_NE(test::read_text(prompts / "000000.txt").find("Close-up of c1 in CAM_FRONT"), std::string::npos);
  EXPECT_EQ(run.stats["close_ups"].get<int>(), 1);
}

TEST(CloseUps, TheFramePrefixStaysSharedAndTheCloseUpTokensAreCounted) {
  const fs::path plain_dir = test::scratch_dir("close-ups-off"), crops_dir = test::scratch_dir("close-ups-on");
  const std::vector<std::string> small = {"--limit", "24", "--image_max_tokens", "16", "--crop_size", "112"};
  const CloseUpDemoRun plain = run_demo_items(plain_dir, test::demo_dir() / "questions.json", small);
  std::vector<std::string> with_crops = small;
  with_crops.push_back("--object_crops");
  const CloseUpDemoRun crops = run_demo_items(crops_dir, test::demo_dir() / "questions.json", with_crops);
  const auto& s = crops.stats;
  EXPECT_EQ(s["prefix_evaluations"], plain.stats["prefix_evaluations"]);
  EXPECT_EQ(s["prefix_evaluations"], s["frames"]) << "one prefix per frame and model";
  EXPECT_EQ(s["prefix_tokens"], plain.stats["prefix_tokens"]);
  EXPECT_GT(s["close_ups"].get<int>(), 0);
  EXPECT_GT(s["close_up_tokens"].get<int>(), 0);
  // Per question only the close-ups' images and their caption lines are added.
  const int added = s["suffix_tokens"].get<int>() - plain.stats["suffix_tokens"].get<int>();
  EXPECT_GE(added, s["close_up_tokens"].get<int>());
  EXPECT_LT(added, s["close_up_tokens"].get<int>() + 30 * 24);
  // Each close-up goes through the vision tower at most once (one cut again for a frame that
  // shares the camera image, e.g. the demo's frame with a camera missing, has the same content).
  const int added_encodes = s["images_encoded"].get<int>() - plain.stats["images_encoded"].get<int>();
  EXPECT_GT(added_encodes, 0);
  EXPECT_LE(added_encodes, s["close_ups"].get<int>());
  ASSERT_EQ(crops.results.size(), plain.results.size());
  for (size_t i = 0; i < crops.results.size(); ++i) {
    const auto is_error = [](const nlohmann::json& item) {
      return item["answer"].get<std::string>().rfind("[drivevqa error]", 0) == 0;
    };
    EXPECT_EQ(is_error(crops.results[i]), is_error(plain.results[i])) << "item " << i << ": close-ups add no errors";
  }
}

TEST(CloseUps, AReferenceThatCannotBeCutIsSkippedWithAWarningAndTheItemAnswered) {
  const fs::path dir = test::scratch_dir("close-ups-bad");
  auto items = nlohmann::json::parse(test::read_text(test::demo_dir() / "questions.json"));
  nlohmann::json chosen = nlohmann::json::array();
  for (const char* question : {"What is the visual description of <c1,CAM_NOWHERE,812.4,540.0>?",
                               "What is the visual description of <c2,CAM_FRONT,5000,10>?",
                               "What is the visual description of <c3,CAM_FRONT,0.5,0.5>?"}) {
    nlohmann::json item = items[0];
    item["question"] = question;
    chosen.push_back(item);
  }
  std::ofstream(dir / "q.json") << chosen.dump();
  const CloseUpDemoRun run = run_demo_items(dir, dir / "q.json", {"--object_crops", "--image_max_tokens", "16", "--crop_size", "56"});
  ASSERT_EQ(run.results.size(), 3u);
  for (const auto& item : run.results) EXPECT_EQ(item["answer"].get<std::string>().rfind("[drivevqa error]", 0), std::string::npos);
  EXPECT_NE(run.process.err.find("item 0: no close-up of c1: camera CAM_NOWHERE is not among the item's usable images"),
            std::string::npos) << run.process.err;
  EXPECT_NE(run.process.err.find("item 1: no close-up of c2: object c2: its point"), std::string::npos) << run.process.err;
  EXPECT_EQ(run.stats["close_ups"].get<int>(), 1) << "the normalised point of c3 is cut";
}

}  // namespace
}  // namespace drivevqa
