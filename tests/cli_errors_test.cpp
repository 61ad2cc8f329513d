// Bad inputs to `drivevqa ask` give one clear line naming the file and a documented exit code.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "support/test_support.h"
#include "util/files.h"

namespace drivevqa {
namespace {

using test::write_bytes;

std::vector<std::string> ask_args(const std::string& model, const std::string& images) {
  return {test::drivevqa_binary(), "ask", "--model", model, "--images", images, "--max_new_tokens", "2", "-t", "2",
          "--image_max_tokens", "16", "What is ahead?"};
}

void expect_one_line_error(const test::ProcessResult& r, int exit_code, const std::string& names) {
  EXPECT_EQ(r.exit_code, exit_code) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("drivevqa: error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(names), std::string::npos) << r.err;
}

TEST(CliErrors, MissingModelFolder) {
  const auto r = test::run_process(ask_args("/nonexistent/model", test::images_arg(test::first_frame_images())));
  expect_one_line_error(r, 4, "/nonexistent/model");
}

TEST(CliErrors, MissingMmproj) {
  const auto dir = test::scratch_dir("no-mmproj");
  std::filesystem::copy_file(test::tiny_model_dir() / "model.gguf", dir / "model.gguf");
  expect_one_line_error(test::run_process(ask_args(dir.string(), test::images_arg(test::first_frame_images()))), 4,
                        (dir / "mmproj.gguf").string());
}

TEST(CliErrors, ModelFileThatIsNotGguf) {
  const auto dir = test::scratch_dir("not-gguf");
  write_bytes(dir / "model.gguf", "this is not a model\n");
  std::filesystem::copy_file(test::tiny_model_dir() / "mmproj.gguf", dir / "mmproj.gguf");
  const auto r = test::run_process(ask_args(dir.string(), test::images_arg(test::first_frame_images())));
  expect_one_line_error(r, 4, (dir / "model.gguf").string());
  EXPECT_NE(r.err.find("not a GGUF file"), std::string::npos);
}

TEST(CliErrors, TruncatedModelFile) {
  const auto dir = test::scratch_dir("truncated-gguf");
  const auto bytes = read_file_bytes(test::tiny_model_dir() / "model.gguf");
  write_bytes(dir / "model.gguf", std::string(bytes.begin(), bytes.begin() + 100000));
  std::filesystem::copy_file(test::tiny_model_dir() / "mmproj.gguf", dir / "mmproj.gguf");
  expect_one_line_error(test::run_process(ask_args(dir.string(), test::images_arg(test::first_frame_images()))), 4,
                        (dir / "model.gguf").string());
}

TEST(CliErrors, TextModelGivenAsMmproj) {
  const auto dir = test::scratch_dir("swapped");
  std::filesystem::copy_file(test::tiny_model_dir() / "model.gguf", dir / "model.gguf");
  std::filesystem::copy_file(test::tiny_model_dir() / "model.gguf", dir / "mmproj.gguf");
  expect_one_line_error(test::run_process(ask_args(dir.string(), test::images_arg(test::first_frame_images()))), 4,
                        (dir / "mmproj.gguf").string());
}

TEST(CliErrors, MissingImage) {
  auto images = test::first_frame_images();
  images[2] = "/nonexistent/front_left.jpg";
  expect_one_line_error(test::run_process(ask_args(test::tiny_model_dir().string(), test::images_arg(images))), 3,
                        "/nonexistent/front_left.jpg");
}

TEST(CliErrors, CorruptImages) {
  const auto dir = test::scratch_dir("corrupt-images");
  const auto good = read_file_bytes(test::first_frame_images()[0]);
  const std::map<std::string, std::string> cases = {
      {"truncated.jpg", std::string(good.begin(), good.begin() + good.size() / 2)},
      {"empty.jpg", ""},
      {"garbage.jpg", "\xff\xd8\xff garbage that is not a JPEG stream at all"},
      {"text.png", "hello"}};
  for (const auto& [name, bytes] : cases) {
    write_bytes(dir / name, bytes);
    auto images = test::first_frame_images();
    images[1] = dir / name;
    SCOPED_TRACE(name);
    expect_one_line_error(test::run_process(ask_args(test::tiny_model_dir().string(), test::images_arg(images))), 3,
                          (dir / name).string());
  }
}

TEST(CliErrors, UnknownFlagIsAUsageError) {
  const auto r = test::run_process({test::drivevqa_binary(), "ask", "--no-such-flag"});
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
}  // namespace drivevqa
