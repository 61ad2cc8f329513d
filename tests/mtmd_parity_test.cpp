// drivevqa against llama-mtmd-cli built from the same llama.cpp tree: the same tiny model, six demo
// camera images and question must give the identical greedy answer. Both programs run for real.
//
// The images are handed to both as lossless PNG copies of the decoded demo JPEGs: drivevqa decodes
// JPEG with libjpeg-turbo and llama-mtmd-cli with stb_image, whose outputs differ by a few levels in
// some pixels, and a random model amplifies any input difference.
#include <gtest/gtest.h>

#include "engine/image.h"
#include "support/test_support.h"
#include "util/atomic_file.h"
#include "util/files.h"

namespace drivevqa {
namespace {

std::string trim_newlines(std::string s) {
  while (!s.empty() && (s.front() == '\n' || s.front() == '\r')) s.erase(s.begin());
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// Under the sanitizer this compares the same engine numerics again, slower; ask's own code runs
// sanitized in the other ask tests (answer_shape, cli_errors, convert, rpc).
TEST(MtmdCliParity, GreedyAnswerIsIdenticalToLlamaMtmdCli) {
  if (test::kSanitizedBuild) GTEST_SKIP() << "engine numerics, the same as in the normal build";
  const auto dir = test::scratch_dir("parity");
  const char* cameras[] = {"CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_RIGHT", "CAM_BACK_LEFT"};
  const auto jpegs = test::first_frame_images();
  std::vector<std::string> pngs;
  for (size_t i = 0; i < jpegs.size(); ++i) {
    const auto png = encode_png(load_image_file(jpegs[i]));
    pngs.push_back((dir / (std::string(cameras[i]) + ".png")).string());
    write_file_atomic(pngs.back(), png.data(), png.size());
  }
  const std::string question = "What are the important objects in the current scene?";
  std::string user;  // the same user turn drivevqa builds: a labelled marker per camera, then the question
  for (const char* cam : cameras) user += std::string(cam) + ": <__media__>\n";
  user += question;
  const std::string n_tokens = "24";
  const auto model = test::tiny_model_dir();

  std::vector<std::string> cli = {test::mtmd_cli_binary(), "-m", (model / "model.gguf").string(), "--mmproj",
                                  (model / "mmproj.gguf").string(), "-p", user, "-n", n_tokens, "--temp", "0",
                                  "-t", "2", "-c", "16384", "--no-warmup"};
  for (const auto& png : pngs) {
    cli.push_back("--image");
    cli.push_back(png);
  }
  std::string images;
  for (const auto& png : pngs) images += (images.empty() ? "" : ",") + png;
  // --system "": no system turn, since llama-mtmd-cli's multi-message formatting adds a blank line
  // between turns that the model's own template does not.
  const std::vector<std::string> ours = {test::drivevqa_binary(), "ask", "--model", model.string(), "--images", images,
                                         "--system", "", "--max_new_tokens", n_tokens, "-t", "2", question};

  const auto reference = test::run_process(cli);
  ASSERT_EQ(reference.exit_code, 0) << reference.err;
  const auto answer = test::run_process(ours);
  ASSERT_EQ(answer.exit_code, 0) << answer.err;
  const std::string expected = trim_newlines(reference.out), got = trim_newlines(answer.out);
  std::printf("llama-mtmd-cli: %s\ndrivevqa:       %s\n", expected.c_str(), got.c_str());
  EXPECT_GT(got.size(), 10u);
  EXPECT_EQ(got, expected);
}

}  // namespace
}  // namespace drivevqa
