// Hugging Face folders given as models: converted once into the cache, reused, never half-used.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <thread>

#include "modelgen/hf_model_writer.h"
#include "support/test_support.h"

namespace drivevqa {
namespace {

std::vector<std::string> ask_args(const std::filesystem::path& model, const std::filesystem::path& cache) {
  std::string images;
  for (const auto& p : test::first_frame_images()) images += (images.empty() ? "" : ",") + p.string();
  return {test::drivevqa_binary(), "ask", "--model", model.string(), "--cache_dir", cache.string(), "--outtype", "f32",
          "--images", images, "-t", "2", "--max_new_tokens", "6", "--image_max_tokens", "16", "What is ahead?"};
}

TEST(ModelCache, ConvertsOnceThenReuses) {
  const auto dir = test::scratch_dir("cache-reuse");
  write_random_hf_model(dir / "hf", {"tiny", 1, GGML_TYPE_F32});
  const auto first = test::run_process(ask_args(dir / "hf", dir / "cache"));
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.err.find("making the conversion"), std::string::npos) << first.err;
  const auto second = test::run_process(ask_args(dir / "hf", dir / "cache"));
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(second.err.find("making the"), std::string::npos) << second.err;
  EXPECT_NE(second.err.find("using the cached conversion"), std::string::npos) << second.err;
  EXPECT_EQ(first.out, second.out);
  // The same weights as make-model's GGUF folder give the same answer.
  const auto direct = test::run_process(ask_args(test::tiny_model_dir(), dir / "cache"));
  EXPECT_EQ(direct.out, first.out);
}

TEST(ModelCache, HuggingFaceCacheRootUsesTheNewestSnapshot) {
  const auto dir = test::scratch_dir("cache-snapshots");
  const auto root = dir / "models--drivevqa--tiny";
  std::filesystem::create_directories(root / "snapshots" / "old");  // an empty, older snapshot
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  write_random_hf_model(root / "snapshots" / "0123abcd", {"tiny", 1, GGML_TYPE_F32});
  const auto r = test::run_process(ask_args(root, dir / "cache"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("snapshots/0123abcd"), std::string::npos) << r.err;
}

TEST(ModelCache, KilledConversionIsNeverUsed) {
  const auto dir = test::scratch_dir("cache-killed");
  write_random_hf_model(dir / "hf", {"small", 1, GGML_TYPE_F32});
  const auto cache = dir / "cache";
  const int pid = test::spawn_process(ask_args(dir / "hf", cache));
  // Kill once the conversion has started writing.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  bool partial_seen = false;
  while (!partial_seen && std::chrono::steady_clock::now() < deadline) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(cache, ec)) {
      if (e.path().filename().string().find(".partial-") == std::string::npos) continue;
      for (const auto& f : std::filesystem::directory_iterator(e.path(), ec)) {
        if (f.path().filename().string().rfind("model.gguf.partial-", 0) == 0) partial_seen = true;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid, SIGKILL);
  test::wait_process(pid);
  ASSERT_TRUE(partial_seen);
  const auto again = test::run_process(ask_args(dir / "hf", cache));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("making the conversion"), std::string::npos) << "a killed conversion was taken as finished: " << again.err;
  EXPECT_NE(again.err.find("left by an interrupted conversion"), std::string::npos) << again.err;
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(cache)) entries += e.is_directory() ? 1 : 0;
  EXPECT_EQ(entries, 1u) << "the abandoned partial folder is cleaned up";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace drivevqa
