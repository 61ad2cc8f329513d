// Hugging Face folders given as models: converted once into the cache, reused, never half-used.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <thread>

#include "modelgen/hf_model_writer.h"
#include "support/test_support.h"

namespace drivevqa {
namespace {

TEST(ModelCache, ConvertsOnceThenReuses) {
  const auto dir = test::scratch_dir("cache-reuse");
  test::copy_tiny_hf_model(dir / "hf");
  const auto first = test::run_process(test::cached_ask_args(dir / "hf", dir / "cache"));
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.err.find("making the conversion"), std::string::npos) << first.err;
  const auto second = test::run_process(test::cached_ask_args(dir / "hf", dir / "cache"));
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(second.err.find("making the"), std::string::npos) << second.err;
  EXPECT_NE(second.err.find("using the cached conversion"), std::string::npos) << second.err;
  EXPECT_EQ(first.out, second.out);
  // The same weights as make-model's GGUF folder give the same answer.
  const auto direct = test::run_process(test::cached_ask_args(test::tiny_model_dir(), dir / "cache"));
  EXPECT_EQ(direct.out, first.out);
}

TEST(ModelCache, HuggingFaceCacheRootUsesTheNewestSnapshot) {
  const auto dir = test::scratch_dir("cache-snapshots");
  const auto root = dir / "models--drivevqa--tiny";
  std::filesystem::create_directories(root / "snapshots" / "old");  // an empty, older snapshot
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  test::copy_tiny_hf_model(root / "snapshots" / "0123abcd");
  const auto r = test::run_process(test::cached_ask_args(root, dir / "cache"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("snapshots/0123abcd"), std::string::npos) << r.err;
}

TEST(ModelCache, KilledConversionIsNeverUsed) {
  const auto dir = test::scratch_dir("cache-killed");
  test::copy_tiny_hf_model(dir / "hf");  // its conversion takes long enough (~1 s) to be caught writing
  const auto cache = dir / "cache";
  const int pid = test::spawn_process(test::cached_ask_args(dir / "hf", cache));
  // Kill once the conversion has started writing.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  bool partial_seen = false;
  while (!partial_seen && std::chrono::steady_clock::now() < deadline) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(cache, ec)) {
      if (e.path().filename().string().find(".tmp-") == std::string::npos) continue;
      for (const auto& f : std::filesystem::directory_iterator(e.path(), ec)) {
        if (f.path().filename().string().rfind("model.gguf.partial-", 0) == 0) partial_seen = true;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid, SIGKILL);
  test::wait_process(pid);
  ASSERT_TRUE(partial_seen);
  const auto again = test::run_process(test::cached_ask_args(dir / "hf", cache));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("making the conversion"), std::string::npos) << "a killed conversion was taken as finished: " << again.err;
  EXPECT_NE(again.err.find("left by an interrupted build"), std::string::npos) << again.err;
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(cache)) entries += e.is_directory() ? 1 : 0;
  EXPECT_EQ(entries, 1u) << "the abandoned partial folder is cleaned up";
  std::filesystem::remove_all(dir);
}

// A Hugging Face cache root follows refs/main, even to an older snapshot.
TEST(ModelCache, HuggingFaceCacheRootFollowsRefsMain) {
  const auto dir = test::scratch_dir("cache-refs");
  const auto root = dir / "models--drivevqa--tiny";
  test::copy_tiny_hf_model(root / "snapshots" / "aaaa1111");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  write_random_hf_model(root / "snapshots" / "bbbb2222", {"tiny", 2, GGML_TYPE_F32});
  std::filesystem::create_directories(root / "refs");
  test::write_bytes(root / "refs" / "main", "aaaa1111\n");
  const auto r = test::run_process(test::cached_ask_args(root, dir / "cache"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("snapshots/aaaa1111"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("warn"), std::string::npos) << r.err;
}

// A newer snapshot still downloading (a shard its index names is missing) is passed over with a
// warning, whether refs/main is absent or already names it.
TEST(ModelCache, PartlyDownloadedNewerSnapshotIsIgnoredWithAWarning) {
  const auto dir = test::scratch_dir("cache-partial-snapshot");
  const auto root = dir / "models--drivevqa--tiny";
  const auto good = root / "snapshots" / "good1111", newer = root / "snapshots" / "newer222";
  test::copy_tiny_hf_model(good);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::filesystem::create_directories(newer);
  for (const auto& e : std::filesystem::directory_iterator(good)) {
    if (e.path().extension() != ".safetensors") std::filesystem::copy_file(e.path(), newer / e.path().filename());
  }
  std::filesystem::copy_file(good / "model.safetensors", newer / "model-00001-of-00002.safetensors");
  test::write_bytes(newer / "model.safetensors.index.json",
                    R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})");
  const auto no_ref = test::run_process(test::cached_ask_args(root, dir / "cache"));
  ASSERT_EQ(no_ref.exit_code, 0) << no_ref.err;
  EXPECT_NE(no_ref.err.find("snapshots/good1111"), std::string::npos) << no_ref.err;
  EXPECT_NE(no_ref.err.find("using the newest complete snapshot good1111"), std::string::npos) << no_ref.err;
  std::filesystem::create_directories(root / "refs");
  test::write_bytes(root / "refs" / "main", "newer222");
  const auto ref_partial = test::run_process(test::cached_ask_args(root, dir / "cache"));
  ASSERT_EQ(ref_partial.exit_code, 0) << ref_partial.err;
  EXPECT_NE(ref_partial.err.find("refs/main names newer222, which is not a complete snapshot"), std::string::npos)
      << ref_partial.err;
  EXPECT_EQ(ref_partial.out, no_ref.out);
}

std::vector<std::string> convert_args(const std::filesystem::path& hf, const std::filesystem::path& out,
                                      const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {test::drivevqa_binary(), "convert", "--model", hf.string(), "--out", out.string(),
                                   "--outtype", "f32"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// Build folders left beside `out` (hidden folders named .<name>.tmp-*).
size_t leftovers(const std::filesystem::path& parent) {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(parent)) {
    n += e.path().filename().string().find(".tmp-") != std::string::npos ? 1 : 0;
  }
  return n;
}

class ConvertOut : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir("convert-out");
    test::copy_tiny_hf_model(dir_ / "hf1");
    write_random_hf_model(dir_ / "hf2", {"tiny", 2, GGML_TYPE_F32});
    for (const char* n : {"1", "2"}) {
      const auto r = test::run_process(convert_args(dir_ / (std::string("hf") + n), dir_ / (std::string("ref") + n)));
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
  }
  bool same_as(const std::filesystem::path& a, const std::filesystem::path& b) {
    for (const char* f : {"model.gguf", "mmproj.gguf", "drivevqa-manifest.json"}) {
      if (test::read_text(a / f) != test::read_text(b / f)) return false;
    }
    return true;
  }
  std::filesystem::path dir_;
};

TEST_F(ConvertOut, NonEmptyFolderNeedsOverwriteAndIsReplacedWhole) {
  const auto out = dir_ / "out";
  ASSERT_EQ(test::run_process(convert_args(dir_ / "hf1", out)).exit_code, 0);
  EXPECT_TRUE(same_as(out, dir_ / "ref1"));
  const auto refused = test::run_process(convert_args(dir_ / "hf2", out));
  EXPECT_EQ(refused.exit_code, 5) << refused.err;
  EXPECT_NE(refused.err.find("--overwrite"), std::string::npos) << refused.err;
  EXPECT_TRUE(same_as(out, dir_ / "ref1"));
  const auto replaced = test::run_process(convert_args(dir_ / "hf2", out.string() + "/", {"--overwrite"}));
  ASSERT_EQ(replaced.exit_code, 0) << replaced.err;
  EXPECT_TRUE(same_as(out, dir_ / "ref2"));
  EXPECT_EQ(leftovers(dir_), 0u);
  const std::string manifest = test::read_text(out / "drivevqa-manifest.json");
  EXPECT_NE(manifest.find((dir_ / "hf2").string()), std::string::npos) << manifest;
  EXPECT_NE(manifest.find("\"outtype\": \"f32\""), std::string::npos) << manifest;
}

// Killed (-9) or stopped (SIGTERM) at several moments, convert --overwrite leaves the folder whole:
// the old pair or, once finished, the new one, never a mix; SIGTERM leaves no build folder. Under
// the sanitizers, where each run is several times slower, two moments per signal and one kill
// during --quantize.
TEST_F(ConvertOut, KilledOrStoppedConvertLeavesTheFolderWhole) {
  const auto out = dir_ / "out";
  const std::vector<int> signal_delays_ms = test::normal_or_sanitized<std::vector<int>>({40, 200, 400}, {40, 400});
  const std::vector<int> quantize_kills_ms = test::normal_or_sanitized<std::vector<int>>({300, 700, 1100}, {700});
  for (const int signal : {SIGTERM, SIGKILL}) {
    for (const int delay : signal_delays_ms) {
      std::filesystem::remove_all(out);
      std::filesystem::copy(dir_ / "ref1", out);
      const int pid = test::spawn_process(convert_args(dir_ / "hf2", out, {"--overwrite"}));
      std::this_thread::sleep_for(std::chrono::milliseconds(delay));
      ::kill(pid, signal);
      const int rc = test::wait_process(pid);
      EXPECT_TRUE(same_as(out, dir_ / "ref1") || same_as(out, dir_ / "ref2")) << "signal " << signal << " after " << delay
                                                                            << " ms left a mixed folder";
      if (signal == SIGTERM) {
        EXPECT_TRUE(rc == 0 || rc == 130 || rc == -1 - SIGTERM) << rc;
        EXPECT_EQ(leftovers(dir_), 0u) << "SIGTERM after " << delay << " ms";
      }
    }
  }
  // Killed during --quantize (or just before or after): the folder is absent or complete and quantized.
  for (const int delay : quantize_kills_ms) {
    const auto q = dir_ / "quantized";
    std::filesystem::remove_all(q);
    const int pid = test::spawn_process(convert_args(dir_ / "hf2", q, {"--quantize", "q8_0"}));
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    ::kill(pid, SIGKILL);
    test::wait_process(pid);
    if (!std::filesystem::exists(q)) continue;
    EXPECT_NE(test::read_text(q / "drivevqa-manifest.json").find("\"quantization\": \"q8_0\""), std::string::npos);
    EXPECT_TRUE(std::filesystem::exists(q / "model.gguf") && std::filesystem::exists(q / "mmproj.gguf"));
  }
  // The next convert removes what the killed ones left.
  std::filesystem::remove_all(out);
  ASSERT_EQ(test::run_process(convert_args(dir_ / "hf1", out)).exit_code, 0);
  EXPECT_EQ(leftovers(dir_), 0u);
}

// A folder whose files no longer match its manifest (one of the pair from another conversion) is
// refused by ask, naming the file.
TEST_F(ConvertOut, FolderNotMatchingItsManifestIsRefused) {
  const auto out = dir_ / "mixed";
  std::filesystem::copy(dir_ / "ref1", out);
  ASSERT_EQ(test::run_process(test::cached_ask_args(out, dir_ / "cache")).exit_code, 0);
  std::filesystem::copy_file(dir_ / "ref2" / "mmproj.gguf", out / "mmproj.gguf",
                             std::filesystem::copy_options::overwrite_existing);
  const auto r = test::run_process(test::cached_ask_args(out, dir_ / "cache"));
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find((out / "mmproj.gguf").string() + ": does not match"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace drivevqa
