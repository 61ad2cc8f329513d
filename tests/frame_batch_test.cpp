// Frame-level work: a frame's images decoded and encoded once, its prefix evaluated once, its
// questions decoded in parallel; answers checked against evaluating each full prompt on its own.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "engine/answer.h"
#include "engine/image_resize.h"
#include "prompt/answer_shape.h"
#include "prompt/chat_prompt.h"
#include "support/answer_shapes.h"
#include "support/test_support.h"

namespace drivevqa {
namespace {

// Small images (32 tokens each) keep these runs short; the paths are the same at any size.
constexpr int kImageTokens = 32;

struct BatchedDemoRun {
  nlohmann::json results;
  nlohmann::json stats;
  std::filesystem::path dir;
};

BatchedDemoRun run_batched_demo(const std::string& name, std::vector<std::string> extra) {
  BatchedDemoRun run;
  run.dir = test::scratch_dir(name);
  std::vector<std::string> argv = {test::drivevqa_binary(), "run", "--json_file", (test::demo_dir() / "questions.json").string(),
                                   "--image_base_dir", test::demo_dir().string(), "--output_file", (run.dir / "out.json").string(),
                                   "--model_7b", test::tiny_model_dir().string(), "--dtype", "fp16", "--image_max_tokens",
                                   std::to_string(kImageTokens), "--max_new_tokens_cap", "12", "-t", "2", "--stats_json",
                                   (run.dir / "stats.json").string()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  const auto r = test::run_process(argv);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  run.results = nlohmann::json::parse(test::read_text(run.dir / "out.json"));
  run.stats = nlohmann::json::parse(test::read_text(run.dir / "stats.json"));
  return run;
}

bool is_error(const nlohmann::json& item) { return item["answer"].get<std::string>().rfind("[drivevqa error]", 0) == 0; }

// Prefix sharing is exact. With flash attention off everywhere, every batch runs on one kernel; by
// default the prefix alone runs on the flash kernel (Engine.FlashPrefix... in engine_test.cpp).
TEST(FrameBatch, WithParallelOneEveryAnswerEqualsItsFullPromptEvaluatedAlone) {
  const auto prompts = test::scratch_dir("parallel-one-prompts");
  const BatchedDemoRun run = run_batched_demo("parallel-one", {"--parallel", "1", "--limit", "20", "--dump_prompts", prompts.string(),
                                                "--use_flash_attn", "False"});
  EngineOptions options;
  options.n_threads = 2;
  options.flash_attention = FlashAttention::kOff;  // the vision tower too, as the run
  options.image_min_tokens = 4;
  options.image_max_tokens = kImageTokens;
  const auto model = Model::load(find_model_files(test::tiny_model_dir()), options);
  ImageSizing sizing;
  sizing.max_pixels = int64_t{kImageTokens} * 28 * 28;
  size_t compared = 0;
  for (size_t i = 0; i < run.results.size(); ++i) {
    const auto& item = run.results[i];
    if (is_error(item)) continue;
    char name[32];
    std::snprintf(name, sizeof name, "%06zu.txt", i);
    const std::string text = test::read_text(prompts / name);
    std::vector<RgbImage> images;
    for (const std::string_view cam : kCameraOrder) {
      if (!item["img_paths"].contains(cam)) continue;
      const auto path = test::demo_dir() / item["img_paths"][std::string(cam)].get<std::string>();
      if (std::filesystem::exists(path)) images.push_back(load_image_file(path, &sizing));
    }
    std::vector<const RgbImage*> ptrs;
    for (const auto& im : images) ptrs.push_back(&im);
    GenerationParams params;
    params.max_new_tokens = 12;
    // The run's answer shape (prompt/answer_shape.h): its grammar and its token cap.
    const AnswerShape shape = answer_shape(subtask_from_name(item["subtask"].get<std::string>()), item["question"].get<std::string>());
    params.grammar = answer_grammar(shape, McqFormat::kLetter);
    if (const int cap = answer_token_cap(shape, McqFormat::kLetter); cap > 0) params.max_new_tokens = std::min(12, cap);
    const Answer fresh = answer_prompt(*model, text, ptrs, params);
    // The results file stores invalid UTF-8 (a token cut inside a character) as U+FFFD.
    const auto as_stored = [](const std::string& s) { return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); };
    EXPECT_EQ(item["answer"].dump(), as_stored(fresh.generation.text)) << "item " << i;
    ++compared;
  }
  EXPECT_EQ(compared, 18u);  // 20 items (every subtask, the frame with a missing camera) less the two unanswerable ones
}

TEST(FrameBatch, ParallelGreedyAnswersAgreeWithParallelOneAndHaveTheirShapes) {
  const BatchedDemoRun one = run_batched_demo("greedy-1", {"--parallel", "1"});
  const BatchedDemoRun all = run_batched_demo("greedy-all", {});
  test::expect_all_shaped(test::count_answer_shapes(one.results, "greedy, --parallel 1"));
  test::expect_all_shaped(test::count_answer_shapes(all.results, "greedy, parallel"));
  ASSERT_EQ(one.results.size(), all.results.size());
  size_t same = 0, answered = 0;
  for (size_t i = 0; i < one.results.size(); ++i) {
    if (is_error(one.results[i])) continue;
    ++answered;
    same += one.results[i]["answer"] == all.results[i]["answer"] ? 1 : 0;
  }
  const double share = static_cast<double>(same) / static_cast<double>(answered);
  std::printf("greedy answers identical with --parallel 1 and parallel decoding: %zu of %zu (%.1f%%); up to %d at once\n",
              same, answered, 100.0 * share, all.stats["max_parallel"].get<int>());
  EXPECT_GE(share, 0.95);
  EXPECT_GT(all.stats["max_parallel"].get<int>(), 8);
  EXPECT_EQ(one.stats["max_parallel"].get<int>(), 1);
  // One question at a time takes a step per generated token; decoding them together shares steps.
  EXPECT_GE(one.stats["decode_calls"].get<size_t>(), one.stats["generated_tokens"].get<size_t>());
  EXPECT_LT(all.stats["decode_calls"].get<size_t>(), one.stats["decode_calls"].get<size_t>() / 4);
}

// Answers across batch shapes agree only up to rounding (README "Reproducibility"): greedy answers
// almost always, so most of them must match.
size_t same_answers(const BatchedDemoRun& a, const BatchedDemoRun& b) {
  size_t same = 0;
  for (size_t i = 0; i < a.results.size() && i < b.results.size(); ++i) same += a.results[i]["answer"] == b.results[i]["answer"] ? 1 : 0;
  return same;
}

TEST(FrameBatch, AFrameThatDoesNotFitTheContextIsDecodedInWaves) {
  const BatchedDemoRun one = run_batched_demo("waves-1", {"--parallel", "1", "--limit", "17"});
  const BatchedDemoRun waves = run_batched_demo("waves", {"--max_context", "512", "--limit", "17"});
  ASSERT_EQ(one.results.size(), waves.results.size());
  const size_t same = same_answers(one, waves);
  std::printf("greedy answers identical in waves and one at a time: %zu of %zu\n", same, one.results.size());
  EXPECT_GE(same, 15u);
  const int most = waves.stats["max_parallel"].get<int>();
  EXPECT_GT(most, 1);
  EXPECT_LT(most, 17);  // not all of the frame's questions fit at once
  EXPECT_EQ(waves.stats["errors"].get<int>(), 0);
  EXPECT_EQ(waves.stats["prefix_evaluations"].get<int>(), 1);
}

TEST(FrameBatch, SampledAnswersRepeatExactlyWithTheSameSeedAndParallelismAndHaveTheirShapes) {
  const std::vector<std::string> sampling = {"--do_sample", "True", "--temperature", "0.9"};
  auto with_seed = [&](const std::string& seed, const std::string& parallel = "8") {
    std::vector<std::string> args = sampling;
    args.insert(args.end(), {"--seed", seed, "--parallel", parallel});
    return args;
  };
  const BatchedDemoRun a = run_batched_demo("sample-a", with_seed("7"));
  const BatchedDemoRun b = run_batched_demo("sample-b", with_seed("7"));
  std::vector<std::string> other_seed = with_seed("8");
  other_seed.insert(other_seed.end(), {"--limit", "20"});
  const BatchedDemoRun other = run_batched_demo("sample-other", other_seed);
  ASSERT_EQ(a.results.size(), b.results.size());
  for (size_t i = 0; i < a.results.size(); ++i) EXPECT_EQ(a.results[i]["answer"], b.results[i]["answer"]) << "item " << i;
  EXPECT_LT(same_answers(a, other), other.results.size()) << "another seed samples other answers";
  EXPECT_EQ(b.stats["max_parallel"].get<int>(), 8);
  test::expect_all_shaped(test::count_answer_shapes(a.results, "sampled, --parallel 8"));
  // Across parallelism sampled answers are not promised; print how many agree on this machine.
  // Not under the sanitizers, where each run is several times slower: this fourth run (the
  // slowest, one question at a time) adds only that print and a second shape count.
  if (test::kSanitizedBuild) return;
  const BatchedDemoRun single = run_batched_demo("sample-1", with_seed("7", "1"));
  test::expect_all_shaped(test::count_answer_shapes(single.results, "sampled, --parallel 1"));
  std::printf("sampled answers identical with --parallel 1 and 8 on this machine: %zu of %zu\n", same_answers(a, single),
              a.results.size());
}

TEST(FrameBatch, EachImageIsDecodedAndEncodedOnceAndEachFramePrefixEvaluatedOnce) {
  const BatchedDemoRun run = run_batched_demo("counters", {});
  const auto& s = run.stats;
  // 4 frames x 6 cameras; the item missing a camera is its own frame of 5 already-seen images.
  EXPECT_EQ(s["images_decoded"].get<int>(), 24);
  EXPECT_EQ(s["images_encoded"].get<int>(), 24);
  EXPECT_EQ(s["frames"].get<int>(), 5);
  EXPECT_EQ(s["prefix_evaluations"].get<int>(), 5);
  EXPECT_EQ(s["answered_now"].get<int>(), 71);
  EXPECT_EQ(s["errors"].get<int>(), 2);
  EXPECT_GT(s["generated_tokens"].get<int>(), 0);
  EXPECT_GT(s["stage_seconds"]["encode_images"].get<double>(), 0.0);
  EXPECT_GT(s["peak_rss_mb"].get<double>(), 0.0);
}

TEST(FrameBatch, TheSeedScriptsAlgorithmRedoesImageWorkForEveryQuestion) {
  const BatchedDemoRun run = run_batched_demo("no-reuse", {"--frame_reuse", "False", "--prompt_layout", "seed", "--parallel", "1", "--limit", "6"});
  const auto& s = run.stats;
  const int answered = s["answered_now"].get<int>() - s["errors"].get<int>();
  EXPECT_EQ(answered, 6);
  EXPECT_EQ(s["images_decoded"].get<int>(), 6 * answered);
  EXPECT_EQ(s["images_encoded"].get<int>(), 6 * answered);
  EXPECT_EQ(s["prefix_evaluations"].get<int>(), 0);
}

TEST(ImageSizing, TargetSizesFollowTheQwenProcessor) {
  const ImageSizing defaults;
  EXPECT_EQ(qwen_target_size(1600, 900, defaults), (PixelSize{1596, 896}));
  ImageSizing small;
  small.max_pixels = 200704;
  // sqrt(1440000 / 200704) * 336 is 899.99999...: the processor's floor gives 308, and so do we.
  EXPECT_EQ(qwen_target_size(1600, 900, small), (PixelSize{588, 308}));
  EXPECT_EQ(qwen_target_size(20, 20, defaults), (PixelSize{56, 56}));  // raised to min_pixels
  const PixelSize big = qwen_target_size(8000, 6000, defaults);
  EXPECT_LE(int64_t{big.width} * big.height, defaults.max_pixels);
  EXPECT_EQ(big.width % 28, 0);
  EXPECT_EQ(big.height % 28, 0);
}

TEST(ImageSizing, ScaledJpegDecodeLandsOnTheTargetSizeCloseToAFullDecode) {
  const auto path = test::first_frame_images().front();
  ImageSizing small;
  small.max_pixels = 200704;
  const RgbImage scaled = load_image_file(path, &small);  // decoded at 1/2, then resized
  const RgbImage full = resize_bicubic(load_image_file(path), qwen_target_size(1600, 900, small));
  ASSERT_EQ(scaled.width, 588);
  ASSERT_EQ(scaled.height, 308);
  ASSERT_EQ(full.pixels.size(), scaled.pixels.size());
  double diff = 0;
  for (size_t i = 0; i < full.pixels.size(); ++i) diff += std::abs(int(full.pixels[i]) - int(scaled.pixels[i]));
  EXPECT_LT(diff / static_cast<double>(full.pixels.size()), 4.0);  // mean absolute difference in 8-bit levels
}

}  // namespace
}  // namespace drivevqa
