// Publishing cached artifacts (util/cache_publish.h) with real processes and real files:
// concurrent builders share one entry, kills never leave a usable partial, only abandoned build
// folders (judged by their lock, never by their name) are removed.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "modelgen/lora_writer.h"
#include "support/test_support.h"

namespace drivevqa {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Starts argv (optionally behind a prefix such as unshare) with stdout/stderr into files.
int spawn_logged(std::vector<std::string> argv, const fs::path& out, const fs::path& err) {
  std::vector<std::string> sh = {"/bin/sh", "-c", "exec \"$0\" \"$@\" >'" + out.string() + "' 2>'" + err.string() + "'"};
  sh.insert(sh.end(), argv.begin(), argv.end());
  return test::spawn_process(sh);
}

// Folder names in `dir`, hidden ones included.
std::vector<std::string> folders(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_directory()) names.push_back(e.path().filename().string());
  }
  return names;
}

bool unshare_works() {
  return test::run_process({"/usr/bin/unshare", "--pid", "--fork", "/bin/true"}).exit_code == 0;
}

// Two processes (each optionally behind `prefix`) ask through one fresh cache at the same time,
// `min_rounds` times and then as often as fits in `budget`: both succeed, one conversion is made,
// one entry is left.
void race_conversions(const std::string& name, const std::vector<std::string>& prefix, int min_rounds, int max_rounds,
                      std::chrono::seconds budget) {
  const fs::path dir = test::scratch_dir(name);
  test::copy_tiny_hf_model(dir / "hf");
  const auto reference = test::run_process(test::cached_ask_args(dir / "hf", dir / "reference-cache"));
  ASSERT_EQ(reference.exit_code, 0) << reference.err;
  const auto end = Clock::now() + budget;
  int rounds = 0;
  for (; rounds < max_rounds && (rounds < min_rounds || Clock::now() < end); ++rounds) {
    const fs::path cache = dir / ("cache-" + std::to_string(rounds));
    int pids[2];
    for (int k = 0; k < 2; ++k) {
      std::vector<std::string> argv = prefix;
      for (const auto& a : test::cached_ask_args(dir / "hf", cache)) argv.push_back(a);
      pids[k] = spawn_logged(argv, dir / ("out" + std::to_string(k)), dir / ("err" + std::to_string(k)));
    }
    std::string logs;
    for (int k = 0; k < 2; ++k) {
      const int rc = test::wait_process(pids[k]);
      const std::string err = test::read_text(dir / ("err" + std::to_string(k)));
      ASSERT_EQ(rc, 0) << "round " << rounds << ": " << err;
      EXPECT_EQ(test::read_text(dir / ("out" + std::to_string(k))), reference.out) << "round " << rounds;
      logs += err;
    }
    EXPECT_EQ(test::count_of(logs, "info: making the conversion"), 1u) << "round " << rounds << ": " << logs;
    EXPECT_EQ(folders(cache).size(), 1u) << "round " << rounds << ": one published entry, no leftovers";
    fs::remove_all(cache);
  }
  std::printf("[ info ] %d rounds of two concurrent conversions\n", rounds);
}

// 20 rounds as the issue asks where they fit; a round takes ~3 s on the 2-core test machine, so
// there it is at least 3 rounds and as many as fit in 15 s (the suite's time budget). Under the
// sanitizers a round takes ~20 s: one round there (the repetition is the normal build's job; the
// sanitizers check the code of the waiting and the publishing side once).
TEST(CachePublish, TwoRunsConvertingOneFolderShareOneEntry) {
  race_conversions("race", {}, test::normal_or_sanitized(3, 1), test::normal_or_sanitized(20, 1),
                   std::chrono::seconds(test::normal_or_sanitized(15, 0)));
}

// Both processes are PID 1 of their own namespace: their temporary folders must still differ.
// Three rounds (the 20 of the issue run without namespaces above, time permitting); one under the
// sanitizers.
TEST(CachePublish, TwoRunsInSeparatePidNamespacesShareOneEntry) {
  if (!unshare_works()) GTEST_SKIP() << "unshare --pid --fork is not allowed here";
  const int rounds = test::normal_or_sanitized(3, 1);
  race_conversions("race-pidns", {"/usr/bin/unshare", "--pid", "--fork"}, rounds, rounds, std::chrono::seconds(0));
}

// A stale build folder (its owner file not locked: the process is gone) is removed; a live one
// (locked by a running process) and folders merely named like temporary ones are kept.
TEST(CachePublish, OnlyAbandonedBuildFoldersAreRemoved) {
  const fs::path dir = test::scratch_dir("stale");
  test::copy_tiny_hf_model(dir / "hf");
  const fs::path cache = dir / "cache";
  for (const char* name : {".x.tmp-dead00", ".y.tmp-live00", ".z.tmp-named0", "w.partial-999999"}) {
    fs::create_directories(cache / name);
    std::ofstream(cache / name / "payload") << "data";
  }
  std::ofstream(cache / ".x.tmp-dead00" / ".drivevqa-owner") << "host gone pid 1 started 0\n";
  std::ofstream(cache / ".y.tmp-live00" / ".drivevqa-owner") << "host here pid 1 started 0\n";
  const int holder = test::spawn_process({"/usr/bin/flock", (cache / ".y.tmp-live00" / ".drivevqa-owner").string(),
                                          "/bin/sleep", "30"});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // flock(1) has taken the lock
  const auto r = test::run_process(test::cached_ask_args(dir / "hf", cache));
  ::kill(holder, SIGKILL);
  test::wait_process(holder);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(fs::exists(cache / ".x.tmp-dead00")) << r.err;
  EXPECT_NE(r.err.find("left by an interrupted build (host gone pid 1"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(cache / ".y.tmp-live00" / "payload")) << "a live build folder was removed";
  EXPECT_TRUE(fs::exists(cache / ".z.tmp-named0" / "payload"));
  EXPECT_TRUE(fs::exists(cache / "w.partial-999999" / "payload"));
}

// A model folder whose own name looks like a temporary one (and a pid that is gone) keeps its
// finished entry: the second run reuses it.
TEST(CachePublish, ModelNamedLikeATemporaryFolderKeepsItsEntry) {
  const fs::path dir = test::scratch_dir("temp-named");
  const fs::path hf = dir / "m.partial-999999";
  test::copy_tiny_hf_model(hf);
  ASSERT_EQ(test::run_process(test::cached_ask_args(hf, dir / "cache")).exit_code, 0);
  const auto again = test::run_process(test::cached_ask_args(hf, dir / "cache"));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("using the cached conversion"), std::string::npos) << again.err;
  EXPECT_EQ(again.err.find("removing"), std::string::npos) << again.err;
}

// Kills -9 `argv` after each delay, then runs it again: the rerun succeeds with `reference`'s
// answer (never a partial artifact) and leaves no build folder behind. Returns how many reruns
// found (and removed) a killed build's folder, i.e. how many kills landed mid-build.
int kill_then_rerun(const fs::path& dir, const std::vector<std::string>& argv, const fs::path& cache,
                     const std::string& reference, const std::vector<int>& delays_ms) {
  int mid_build = 0;
  for (const int delay : delays_ms) {
    const int pid = test::spawn_process(argv);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    ::kill(pid, SIGKILL);
    test::wait_process(pid);
    const auto again = test::run_process(argv);
    EXPECT_EQ(again.exit_code, 0) << "killed after " << delay << " ms: " << again.err;
    mid_build += again.err.find("left by an interrupted build") != std::string::npos ? 1 : 0;
    EXPECT_EQ(again.out, reference) << "killed after " << delay << " ms: " << again.err;
    for (const auto& name : folders(cache)) {
      EXPECT_EQ(name.find(".tmp-"), std::string::npos) << name << " left after the rerun (killed after " << delay << " ms)";
    }
    fs::remove_all(cache);
  }
  (void)dir;
  return mid_build;
}

TEST(CachePublish, KilledConversionAndAdapterMergeAreNeverUsed) {
  const fs::path dir = test::scratch_dir("kill-convert");
  test::copy_tiny_hf_model(dir / "hf");
  RandomLoraOptions lora;
  lora.vision = true;  // a merged mmproj too
  write_random_lora(dir / "hf", dir / "adapter", lora);
  const auto plain = test::cached_ask_args(dir / "hf", dir / "cache");
  const auto with_lora = test::cached_ask_args(dir / "hf", dir / "cache", {"--lora", (dir / "adapter").string()});
  const auto ref_plain = test::run_process(test::cached_ask_args(dir / "hf", dir / "ref"));
  const auto ref_lora = test::run_process(test::cached_ask_args(dir / "hf", dir / "ref", {"--lora", (dir / "adapter").string()}));
  ASSERT_EQ(ref_plain.exit_code, 0) << ref_plain.err;
  ASSERT_EQ(ref_lora.exit_code, 0) << ref_lora.err;
  // Fewer kills under the sanitizers, where each run is several times slower: the earliest (20 ms,
  // during start-up) is dropped and the later ones kept.
  const std::vector<int> conversion_kills_ms = test::normal_or_sanitized<std::vector<int>>({20, 300, 700}, {300, 700});
  const std::vector<int> merge_kills_ms = test::normal_or_sanitized<std::vector<int>>({20, 80, 200, 400}, {80, 400});
  EXPECT_GE(kill_then_rerun(dir, plain, dir / "cache", ref_plain.out, conversion_kills_ms), 1) << "no kill landed mid-conversion";
  // The base conversion is in place; the kills land in the adapter merge (or just after it).
  ASSERT_EQ(test::run_process(plain).exit_code, 0);
  for (const int delay : merge_kills_ms) {
    const int pid = test::spawn_process(with_lora);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    ::kill(pid, SIGKILL);
    test::wait_process(pid);
    const auto again = test::run_process(with_lora);
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_EQ(again.out, ref_lora.out) << "adapter merge killed after " << delay << " ms: " << again.err;
    for (const auto& name : folders(dir / "cache")) EXPECT_EQ(name.find(".tmp-"), std::string::npos) << name;
    for (const auto& name : folders(dir / "cache")) {
      if (name.rfind("lora-", 0) == 0) fs::remove_all(dir / "cache" / name);
    }
  }
}

// Leftover build folders anywhere under `dir`.
std::vector<std::string> build_leftovers(const fs::path& dir) {
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec)) {
    if (e.path().filename().string().find(".tmp-") != std::string::npos) found.push_back(e.path().string());
  }
  return found;
}

// A KB large enough that its index build takes a while, killed at several moments: the rerun
// answers from a complete index.
TEST(CachePublish, KilledKbIndexBuildIsNeverUsed) {
  const fs::path dir = test::scratch_dir("kill-kb");
  const auto items = nlohmann::json::parse(test::read_text(test::demo_dir() / "questions.json"));
  nlohmann::json notes = nlohmann::json::array();
  for (int i = 0; i < 4; ++i) {
    notes.push_back({{"scene_token", items[i]["scene_token"]}, {"frame_token", items[i]["frame_token"]},
                     {"question", items[i]["question"]}, {"answer", "KB answer " + std::to_string(i)}});
  }
  for (int i = 0; i < 40000; ++i) {
    notes.push_back({{"scene_token", "scene-" + std::to_string(i % 97)}, {"frame_token", "frame-" + std::to_string(i)},
                     {"question", "What is object number " + std::to_string(i) + " doing near the lane " +
                                      std::to_string(i % 13) + "?"},
                     {"answer", "Moving " + std::to_string(i)}});
  }
  std::ofstream(dir / "kb.json") << nlohmann::json{{"annotations", notes}}.dump();
  const std::vector<std::string> argv = {
      test::drivevqa_binary(), "run", "--json_file", (test::demo_dir() / "questions.json").string(), "--image_base_dir",
      test::demo_dir().string(), "--output_file", (dir / "out.json").string(), "--model_7b", "/nonexistent/model",
      "--limit", "4", "--kb_file", (dir / "kb.json").string(), "--rag_mode", "override", "--cache_dir",
      (dir / "cache").string()};
  const auto first = Clock::now();
  const auto clean = test::run_process(argv);
  ASSERT_EQ(clean.exit_code, 0) << clean.err;
  const auto build_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - first).count();
  // run keeps its KB index beside the --cache_dir folder (dir/kb); a journal would answer a rerun.
  const auto fresh_output = [&] {
    fs::remove(dir / "out.json");
    fs::remove(dir / "out.json.journal");
  };
  int mid_build = 0;
  // Three kill points under the sanitizers, each run being several times slower there.
  for (const double at : test::normal_or_sanitized<std::vector<double>>({0.1, 0.3, 0.5, 0.7, 0.9}, {0.3, 0.5, 0.7})) {
    fs::remove_all(dir / "kb");
    fresh_output();
    const int pid = test::spawn_process(argv);
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(at * static_cast<double>(build_ms))));
    ::kill(pid, SIGKILL);
    test::wait_process(pid);
    fresh_output();
    const auto again = test::run_process(argv);
    ASSERT_EQ(again.exit_code, 0) << "killed at " << at << " of the run: " << again.err;
    EXPECT_NE(again.err.find("answered from the knowledge base 4"), std::string::npos) << again.err;
    mid_build += again.err.find("left by an interrupted build") != std::string::npos ? 1 : 0;
    const auto out = nlohmann::json::parse(test::read_text(dir / "out.json"));
    for (int i = 0; i < 4; ++i) EXPECT_EQ(out[i]["answer"], "KB answer " + std::to_string(i));
    EXPECT_TRUE(build_leftovers(dir / "kb").empty()) << again.err;
  }
  EXPECT_GE(mid_build, 1) << "no kill landed mid-build";
}

}  // namespace
}  // namespace drivevqa
