// Markers on the camera images themselves (--draw_markers): drawn where the object is in the image
// the engine gets, one frame (one prefix) per marker set, unmarked cameras shared, bad references
// skipped with a warning, switched per subtask by the prompts file.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <random>

#include "dataset/object_refs.h"
#include "engine/image.h"
#include "engine/image_resize.h"
#include "pipeline/frame_markers.h"
#include "support/test_support.h"
#include "visual/object_crop.h"

namespace drivevqa {
namespace {

namespace fs = std::filesystem;


bool same_pixel(const RgbImage& a, const RgbImage& b, int x, int y) { return std::equal(test::pixel(a, x, y), test::pixel(a, x, y) + 3, test::pixel(b, x, y)); }

bool has_colour(const RgbImage& image, int x, int y, MarkerColor c) {
  const uint8_t* p = test::pixel(image, x, y);
  return p[0] == c.r && p[1] == c.g && p[2] == c.b;
}

// The ring in `marked` around (cx, cy), against `plain`: the centroid of the changed pixels within
// the ring's reach (the label lies beyond it), and whether the ring's inside is untouched.
struct RingFound {
  double x = 0, y = 0;
  size_t changed = 0;
  bool inside_untouched = true;
};

RingFound find_ring(const RgbImage& marked, const RgbImage& plain, int cx, int cy) {
  const MarkerStyle s = marker_style(std::min(marked.width, marked.height));
  const int reach = s.radius + s.ring / 2 + s.outline;
  const double inside = s.radius - s.ring / 2.0 - s.outline - 1;
  RingFound f;
  for (int y = std::max(0, cy - reach); y <= std::min(marked.height - 1, cy + reach); ++y) {
    for (int x = std::max(0, cx - reach); x <= std::min(marked.width - 1, cx + reach); ++x) {
      const double r = std::hypot(x - cx, y - cy);
      if (r > reach) continue;
      const bool changed = !same_pixel(marked, plain, x, y);
      if (r < inside && changed) f.inside_untouched = false;
      if (!changed) continue;
      f.x += x, f.y += y;
      ++f.changed;
    }
  }
  if (f.changed) f.x /= static_cast<double>(f.changed), f.y /= static_cast<double>(f.changed);
  return f;
}

TEST(UnitDrawMarkers, OnlyDrawableReferencesAreChosenInAnOrderThatDoesNotDependOnTheQuestion) {
  const std::vector<CameraImage> cameras = {{"CAM_FRONT", "f.jpg"}, {"CAM_BACK", "b.jpg"}};
  const MarkerChoice choice = choose_markers(
      "<c3,CAM_BACK,0.5,0.5> <c1,CAM_FRONT,812.4,540> <c2,CAM_NOWHERE,1,1> <c4,CAM_FRONT,1600,10> <c5,CAM_BACK,-1,3>", cameras);
  ASSERT_EQ(choice.marked.size(), 2u);
  EXPECT_EQ(choice.marked[0].label, "c1");
  EXPECT_EQ(choice.marked[1].label, "c3");
  ASSERT_EQ(choice.skipped.size(), 3u);
  EXPECT_EQ(choice.skipped[0], "c2: camera CAM_NOWHERE is not among the item's images");
  EXPECT_EQ(choice.skipped[1].rfind("c4: its point", 0), 0u) << choice.skipped[1];
  EXPECT_EQ(choice.skipped[2].rfind("c5: its point", 0), 0u) << choice.skipped[2];

  const auto key = [&](const char* question) { return marker_set_key(choose_markers(question, cameras).marked); };
  EXPECT_EQ(key("<c2,CAM_BACK,10,20> then <c1,CAM_FRONT,30,40>"), key("<c1,CAM_FRONT,30,40> then <c2,CAM_BACK,10,20>"));
  EXPECT_NE(key("<c1,CAM_FRONT,30,40>"), key("<c1,CAM_FRONT,30,41>")) << "another point is another set";
  EXPECT_NE(key("<c1,CAM_FRONT,30,40>"), key("<c1,CAM_BACK,30,40>")) << "another camera is another set";
  EXPECT_NE(key("<c1,CAM_FRONT,30,40>"), key("<c2,CAM_FRONT,30,40>")) << "another label is another set";
  EXPECT_EQ(key("no object"), "");
  EXPECT_EQ(key("<c9,CAM_NOWHERE,1,2>"), "") << "nothing drawable: no set, the frame's own images";
}

TEST(UnitDrawMarkers, TheMarkerIsDrawnOnACopyAtThePointScaledToTheImageAndOtherCamerasAreLeftAlone) {
  // Images at a model's input size (not 1600x900): the point scales with them.
  const RgbImage front = test::dark_noise_image(196, 112, 1), back = test::dark_noise_image(196, 112, 2), left = test::dark_noise_image(196, 112, 3);
  const std::vector<CameraImage> cameras = {{"CAM_FRONT", "f.jpg"}, {"CAM_BACK", "b.jpg"}, {"CAM_FRONT_LEFT", "l.jpg"}};
  std::vector<const RgbImage*> images = {&front, &back, &left};
  const std::vector<ObjectRef> marked = object_refs("<c1,CAM_FRONT,812.4,540.0> <c2,CAM_BACK,0.25,0.5> <c3,CAM_BACK_RIGHT,5,5>");
  RunCounters counters;
  const FrameMarkers out = draw_frame_markers(marked, cameras, images, counters);

  ASSERT_EQ(out.images.size(), 2u);
  EXPECT_EQ(out.cameras, (std::vector<std::string>{"CAM_FRONT", "CAM_BACK"}));
  EXPECT_EQ(images[0], out.images[0].get()) << "the engine is handed the marked copy";
  EXPECT_EQ(images[1], out.images[1].get());
  EXPECT_EQ(images[2], &left) << "a camera without an object keeps the frame's own image";
  ASSERT_EQ(out.skipped.size(), 1u);
  EXPECT_EQ(out.skipped[0], "c3: camera CAM_BACK_RIGHT is not among the item's usable images");
  EXPECT_EQ(counters.marked_images, 2u);
  EXPECT_EQ(counters.marker_sets, 1u);
  EXPECT_EQ(out.key, marker_set_key(std::vector<ObjectRef>{marked[0], marked[1]})) << "keyed by what was drawn";

  const int cx = static_cast<int>(812.4 * 196 / 1600), cy = static_cast<int>(540.0 * 112 / 900);  // (99, 67)
  const RingFound ring = find_ring(*images[0], front, cx, cy);
  ASSERT_GT(ring.changed, 0u);
  EXPECT_NEAR(ring.x, cx, 1);
  EXPECT_NEAR(ring.y, cy, 1);
  EXPECT_TRUE(ring.inside_untouched) << "the object stays visible";
  const MarkerStyle style = marker_style(112);
  EXPECT_TRUE(has_colour(*images[0], cx - style.radius, cy, marker_color(1))) << "c1's ring in c1's colour";
  const RingFound normalised = find_ring(*images[1], back, 49, 56);
  EXPECT_NEAR(normalised.x, 49, 1);
  EXPECT_NEAR(normalised.y, 56, 1);
  EXPECT_TRUE(has_colour(*images[1], 49 - style.radius, 56, marker_color(2)));
  // Far from the marker and its label the copy is the original.
  for (int y = 0; y < 40; y += 3)
    for (int x = 0; x < 60; x += 3) ASSERT_TRUE(same_pixel(*images[0], front, x, y));

  // Drawn again from the same set, the same pixels (the same content: encoded once by the engine).
  std::vector<const RgbImage*> again = {&front, &back, &left};
  const FrameMarkers redraw = draw_frame_markers(marked, cameras, again, counters);
  EXPECT_EQ(again[0]->pixels, images[0]->pixels);
}

// ---- runs on the demo ----

struct MarkerRun {
  test::ProcessResult process;
  nlohmann::json results, stats;
  fs::path prompts;
};

MarkerRun run_marker_demo(const fs::path& dir, const fs::path& questions, std::vector<std::string> extra) {
  MarkerRun run;
  run.prompts = dir / "prompts";
  std::vector<std::string> argv = {test::drivevqa_binary(), "run", "--json_file", questions.string(), "--image_base_dir",
                                   test::demo_dir().string(), "--output_file", (dir / "out.json").string(), "--model_7b",
                                   test::tiny_model_dir().string(), "--dtype", "fp16", "--max_new_tokens_cap", "4", "-t", "2",
                                   "--stats_json", (dir / "stats.json").string(), "--dump_prompts", run.prompts.string()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  run.process = test::run_process(argv);
  EXPECT_EQ(run.process.exit_code, 0) << run.process.err;
  run.results = nlohmann::json::parse(test::read_text(dir / "out.json"));
  run.stats = nlohmann::json::parse(test::read_text(dir / "stats.json"));
  return run;
}

// The demo's first item with each of `questions` in turn (same frame, same images).
fs::path first_frame_questions(const fs::path& dir, const std::vector<std::string>& questions) {
  const auto items = nlohmann::json::parse(test::read_text(test::demo_dir() / "questions.json"));
  nlohmann::json chosen = nlohmann::json::array();
  for (const std::string& question : questions) {
    nlohmann::json item = items[0];
    item["question"] = question;
    chosen.push_back(item);
  }
  std::ofstream(dir / "q.json") << chosen.dump();
  return dir / "q.json";
}

bool all_answered(const nlohmann::json& results) {
  return std::all_of(results.begin(), results.end(), [](const nlohmann::json& item) {
    return item["answer"].get<std::string>().rfind("[drivevqa error]", 0) == std::string::npos;
  });
}

TEST(DrawMarkers, TheImageHandedToTheEngineHasTheMarkerOnTheObjectAtItsSize) {
  const fs::path dir = test::scratch_dir("markers-pixels");
  const MarkerRun run = run_marker_demo(dir, test::demo_dir() / "questions.json", {"--limit", "1", "--draw_markers", "--image_max_tokens", "32"});
  const auto items = nlohmann::json::parse(test::read_text(test::demo_dir() / "questions.json"));
  ASSERT_NE(items[0]["question"].get<std::string>().find("<c1,CAM_FRONT,812.4,540.0>"), std::string::npos);
  // The camera image as the run resizes it for the engine (--image_max_tokens 32).
  ImageSizing sizing;
  sizing.max_pixels = 32 * 28 * 28;
  const RgbImage plain = load_image_file(test::demo_dir() / items[0]["img_paths"]["CAM_FRONT"].get<std::string>(), &sizing);
  const std::string png = test::read_text(run.prompts / "000000-marked-CAM_FRONT.png");
  const RgbImage sent = decode_image(reinterpret_cast<const uint8_t*>(png.data()), png.size(), "marked");
  ASSERT_EQ(sent.width, plain.width);
  ASSERT_EQ(sent.height, plain.height);
  ASSERT_LT(sent.width, 1600) << "drawn on the resized image";
  const int cx = static_cast<int>(812.4 * plain.width / 1600), cy = static_cast<int>(540.0 * plain.height / 900);
  const RingFound ring = find_ring(sent, plain, cx, cy);
  ASSERT_GT(ring.changed, 0u);
  EXPECT_NEAR(ring.x, cx, 1);
  EXPECT_NEAR(ring.y, cy, 1);
  EXPECT_TRUE(ring.inside_untouched);
  EXPECT_TRUE(has_colour(sent, cx - marker_style(std::min(sent.width, sent.height)).radius, cy, marker_color(1)));
  size_t same = 0, compared = 0;
  for (int y = 0; y < sent.height / 3; ++y)
    for (int x = 0; x < sent.width / 3; ++x, ++compared) same += same_pixel(sent, plain, x, y);
  EXPECT_EQ(same, compared) << "away from the marker the image is the camera's";
  EXPECT_FALSE(fs::exists(run.prompts / "000000-marked-CAM_BACK.png")) << "no object on CAM_BACK";
  EXPECT_EQ(run.stats["marked_images"].get<int>(), 1);
  EXPECT_EQ(run.stats["marker_sets"].get<int>(), 1);
  EXPECT_TRUE(all_answered(run.results));
}

TEST(DrawMarkers, EachMarkerSetIsOneFrameWithOnePrefixAndUnmarkedCamerasAreEncodedOnce) {
  const fs::path plain_dir = test::scratch_dir("markers-off"), dir = test::scratch_dir("markers-on");
  const std::vector<std::string> questions = {
      "What is the visual description of the scene?",                                                 // no marker
      "What is the visual description of <c1,CAM_FRONT,812.4,540.0>?",                                 // {c1}
      "Is <c1,CAM_FRONT,812.4,540.0> moving?",                                                         // {c1}
      "Will <c2,CAM_BACK,1088.3,497.5> be in the moving direction of <c1,CAM_FRONT,812.4,540.0>?",     // {c1, c2}
      "Will <c1,CAM_FRONT,812.4,540.0> be in the moving direction of <c2,CAM_BACK,1088.3,497.5>?"};   // {c1, c2}
  const std::vector<std::string> small = {"--image_max_tokens", "16"};
  const MarkerRun plain = run_marker_demo(plain_dir, first_frame_questions(plain_dir, questions), small);
  std::vector<std::string> with_markers = small;
  with_markers.push_back("--draw_markers");
  const MarkerRun run = run_marker_demo(dir, first_frame_questions(dir, questions), with_markers);
  const auto& s = run.stats;
  EXPECT_EQ(plain.stats["frames"].get<int>(), 1);
  EXPECT_EQ(plain.stats["prefix_evaluations"].get<int>(), 1);
  EXPECT_EQ(plain.stats["images_encoded"].get<int>(), 6);
  EXPECT_EQ(plain.stats["marker_sets"].get<int>(), 0);
  EXPECT_EQ(s["frames"].get<int>(), 3) << "the frame's own, {c1} and {c1, c2}";
  EXPECT_EQ(s["prefix_evaluations"].get<int>(), 3) << "one prefix per marker set, shared by its questions";
  EXPECT_EQ(s["marker_sets"].get<int>(), 2);
  EXPECT_EQ(s["marked_images"].get<int>(), 3) << "CAM_FRONT in both sets, CAM_BACK in one";
  // The six plain cameras once, then CAM_FRONT with c1 (the same pixels in both sets) and CAM_BACK with c2.
  EXPECT_EQ(s["images_encoded"].get<int>(), 8);
  EXPECT_EQ(s["images_decoded"], plain.stats["images_decoded"]) << "marked images are drawn on the decoded ones";
  EXPECT_TRUE(all_answered(run.results));
  EXPECT_FALSE(fs::exists(run.prompts / "000000-marked-CAM_FRONT.png"));
  EXPECT_EQ(test::read_text(run.prompts / "000001-marked-CAM_FRONT.png"), test::read_text(run.prompts / "000003-marked-CAM_FRONT.png"));
  EXPECT_TRUE(fs::exists(run.prompts / "000004-marked-CAM_BACK.png"));
  EXPECT_FALSE(fs::exists(run.prompts / "000001-marked-CAM_BACK.png"));
  EXPECT_NE(run.process.err.find("markers drawn on 3 camera images, in 2 marker sets"), std::string::npos) << run.process.err;
}

TEST(DrawMarkers, AReferenceThatCannotBeDrawnIsSkippedWithAWarningAndTheItemAnswered) {
  const fs::path dir = test::scratch_dir("markers-bad");
  const MarkerRun run = run_marker_demo(dir,
                                 first_frame_questions(dir, {"What is the visual description of <c1,CAM_NOWHERE,812.4,540.0>?",
                                                             "What is the visual description of <c2,CAM_FRONT,5000,10>?",
                                                             "What is the visual description of <c3,CAM_FRONT,0.5,0.5>?"}),
                                 {"--draw_markers", "--image_max_tokens", "16"});
  ASSERT_EQ(run.results.size(), 3u);
  EXPECT_TRUE(all_answered(run.results));
  EXPECT_NE(run.process.err.find("item 0: no marker for c1: camera CAM_NOWHERE is not among the item's images"), std::string::npos)
      << run.process.err;
  EXPECT_NE(run.process.err.find("item 1: no marker for c2: its point (5000.000000, 10.000000) lies outside the CAM_FRONT image"),
            std::string::npos) << run.process.err;
  EXPECT_EQ(run.stats["marker_sets"].get<int>(), 1) << "the normalised point of c3 is drawn";
  EXPECT_EQ(run.stats["frames"].get<int>(), 2) << "items 0 and 1 share the frame's unmarked prefix";
  EXPECT_TRUE(fs::exists(run.prompts / "000002-marked-CAM_FRONT.png"));
  EXPECT_FALSE(fs::exists(run.prompts / "000000-marked-CAM_FRONT.png"));
}

TEST(DrawMarkers, ThePromptsFileTurnsMarkersOnAndOffPerSubtask) {
  const auto items = nlohmann::json::parse(test::read_text(test::demo_dir() / "questions.json"));
  // A perception MCQ and a prediction question, both naming c1 on CAM_FRONT.
  ASSERT_EQ(items[0]["category"], "perception");
  ASSERT_EQ(items[3]["category"], "prediction");
  ASSERT_NE(items[3]["question"].get<std::string>().find("<c1,CAM_FRONT"), std::string::npos);
  const fs::path on_dir = test::scratch_dir("markers-subtask-on"), off_dir = test::scratch_dir("markers-subtask-off");
  for (const fs::path& dir : {on_dir, off_dir}) {
    std::ofstream(dir / "q.json") << nlohmann::json::array({items[0], items[3]}).dump();
    std::ofstream(dir / "prompts.json") << R"({"draw_markers": {"Perception-MCQs": )" << (dir == on_dir ? "true" : "false") << "}}";
  }
  // Off by default, on for perception MCQs only.
  const MarkerRun on = run_marker_demo(on_dir, on_dir / "q.json", {"--prompts", (on_dir / "prompts.json").string(), "--image_max_tokens", "16"});
  EXPECT_TRUE(fs::exists(on.prompts / "000000-marked-CAM_FRONT.png"));
  EXPECT_FALSE(fs::exists(on.prompts / "000001-marked-CAM_FRONT.png"));
  EXPECT_EQ(on.stats["marker_sets"].get<int>(), 1);
  // On by the flag, off for perception MCQs.
  const MarkerRun off = run_marker_demo(off_dir, off_dir / "q.json",
                                 {"--draw_markers", "--prompts", (off_dir / "prompts.json").string(), "--image_max_tokens", "16"});
  EXPECT_FALSE(fs::exists(off.prompts / "000000-marked-CAM_FRONT.png"));
  EXPECT_TRUE(fs::exists(off.prompts / "000001-marked-CAM_FRONT.png"));
  EXPECT_EQ(off.stats["marker_sets"].get<int>(), 1);
  EXPECT_TRUE(all_answered(on.results));
  EXPECT_TRUE(all_answered(off.results));
}

TEST(DrawMarkers, AskDrawsTheMarkersToo) {
  const std::vector<fs::path> images = test::first_frame_images();
  std::string list;
  for (const fs::path& image : images) list += (list.empty() ? "" : ",") + image.string();
  const auto ask = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = {test::drivevqa_binary(), "ask", "--model", test::tiny_model_dir().string(), "--images", list,
                                     "--image_max_tokens", "16", "--max_new_tokens", "2", "-t", "2",
                                     "What is <c1,CAM_FRONT,812.4,540.0> doing? And <c2,CAM_NOWHERE,1,2>?"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return test::run_process(argv);
  };
  const test::ProcessResult marked = ask({"--draw_markers"});
  EXPECT_EQ(marked.exit_code, 0) << marked.err;
  EXPECT_NE(marked.err.find("no marker for c2: camera CAM_NOWHERE is not among the item's images"), std::string::npos) << marked.err;
  const test::ProcessResult plain = ask({});
  EXPECT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(plain.err.find("no marker for"), std::string::npos) << "off unless asked for";
}

}  // namespace
}  // namespace drivevqa
