// The shared prompt layout: a frame's system turn and images are evaluated once, and every answer
// equals that of evaluating the same full prompt on its own.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "engine/answer.h"
#include "support/test_support.h"

namespace drivevqa {
namespace {

TEST(SharedPrefix, AnswersEqualFreshEvaluationAndEachFramePrefixIsEvaluatedOnce) {
  const auto dir = test::scratch_dir("shared-prefix");
  const auto r = test::run_process({test::drivevqa_binary(), "run", "--json_file", (test::demo_dir() / "questions.json").string(),
                                    "--image_base_dir", test::demo_dir().string(), "--output_file", (dir / "out.json").string(),
                                    "--model_7b", test::tiny_model_dir().string(), "--dtype", "fp16", "--image_max_tokens", "32",
                                    "--max_new_tokens_cap", "8", "-t", "2", "--limit", "40", "--dump_prompts",
                                    (dir / "prompts").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // 40 items: frame 0 (17), one item missing a camera, two unanswerable, frame 1 (17), frame 2 (3).
  EXPECT_NE(r.err.find("images decoded 18, encoded 18; shared prefixes evaluated 4;"), std::string::npos) << r.err;

  const auto out = nlohmann::json::parse(test::read_text(dir / "out.json"));
  EngineOptions options;
  options.n_threads = 2;
  options.image_max_tokens = 32;
  const auto model = Model::load(find_model_files(test::tiny_model_dir()), options);
  size_t compared = 0;
  for (size_t i : {0u, 1u, 7u, 16u, 17u, 20u, 31u}) {
    char name[32];
    std::snprintf(name, sizeof name, "%06zu.txt", i);
    const std::string text = test::read_text(dir / "prompts" / name);
    ASSERT_FALSE(text.empty()) << name;
    std::vector<RgbImage> images;
    for (const char* cam : {"CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_RIGHT", "CAM_BACK_LEFT"}) {
      const auto path = test::demo_dir() / out[i]["img_paths"][cam].get<std::string>();
      if (std::filesystem::exists(path)) images.push_back(load_image_file(path));
    }
    std::vector<const RgbImage*> ptrs;
    for (const auto& im : images) ptrs.push_back(&im);
    GenerationParams params;
    params.max_new_tokens = 8;
    const Answer fresh = answer_prompt(*model, text, ptrs, params);
    EXPECT_EQ(out[i]["answer"].get<std::string>(), fresh.generation.text) << "item " << i;
    ++compared;
  }
  EXPECT_EQ(compared, 7u);
}

}  // namespace
}  // namespace drivevqa
