// Memory limits end in an error or the 72B fallback, never in a signal (engine/memory_plan.h):
// real runs under `ulimit -v`, and the limit readers on cgroup and meminfo files.
#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "modelgen/random_model.h"
#include "support/test_support.h"
#include "util/memory_limits.h"

namespace drivevqa {
namespace {

namespace fs = std::filesystem;

struct LimitedRun {
  int exit_code = 0;
  std::string err;
  nlohmann::json results;
};

// A run of the first frames of the demo under an address-space limit of `megabytes`.
LimitedRun run_limited(int megabytes, const fs::path& out, const fs::path& model_72b, bool fallback) {
  std::string cmd = "ulimit -v " + std::to_string(megabytes * 1024) + " && exec '" + test::drivevqa_binary() +
                    "' run --json_file '" + (test::demo_dir() / "questions.json").string() + "' --image_base_dir '" +
                    test::demo_dir().string() + "' --output_file '" + out.string() + "' --overwrite --model_7b '" +
                    test::tiny_model_dir().string() + "' --dtype fp16 --image_max_tokens 32 --max_new_tokens_cap 3 -t 2 --limit 16";
  if (!model_72b.empty()) {
    cmd += " --model_72b '" + model_72b.string() + "' --enable_fallback_72b_to_7b " + (fallback ? "True" : "False");
  }
  const auto r = test::run_process({"/bin/sh", "-c", cmd});
  LimitedRun run{r.exit_code, r.err, nullptr};
  if (r.exit_code == 0) run.results = nlohmann::json::parse(test::read_text(out));
  return run;
}

class MemoryLimit : public ::testing::Test {
 protected:
  void SetUp() override {
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "AddressSanitizer reserves terabytes of address space, so ulimit -v cannot model a small memory";
#endif
  }
};

// From 200 MB to 2 GB: every run ends with exit 0 or 6 (never a signal, never exit 0 with
// answers lost to memory), a refusal says so, and the largest limit is enough.
TEST_F(MemoryLimit, SweepOverATinyRunEndsInAnswersOrExitSix) {
  const auto dir = test::scratch_dir("memory-sweep");
  for (int mb = 200; mb <= 2000; mb += 200) {
    SCOPED_TRACE(std::to_string(mb) + " MB");
    const auto run = run_limited(mb, dir / "out.json", "", true);
    ASSERT_TRUE(run.exit_code == 0 || run.exit_code == 6) << run.exit_code << "\n" << run.err;
    if (run.exit_code == 6) {
      EXPECT_NE(run.err.find("not enough memory"), std::string::npos) << run.err;
      continue;
    }
    for (const auto& item : run.results) EXPECT_NE(item["answer"].get<std::string>().rfind("[drivevqa error]", 0), 0u) << item.dump();
  }
  EXPECT_EQ(run_limited(2000, dir / "out.json", "", true).exit_code, 0);
}

// With a 72B model (the small preset, 686 MiB of weights; its plan needs ~1.7 GiB) that does not fit
// where the 7B (~765 MiB) does: every run ends with exit 0 or 6, and where it answers, the 72B items
// went to the 7B model, or get error answers naming the 72B model without the fallback.
TEST_F(MemoryLimit, SweepWithA72BThatDoesNotFitFallsBackTo7B) {
  const auto dir = test::scratch_dir("memory-sweep-72b");
  write_random_model(dir / "small", {"small", 1, GGML_TYPE_F32});
  size_t answered_runs = 0;
  for (int mb = 200; mb <= 1600; mb += 200) {
    SCOPED_TRACE(std::to_string(mb) + " MB");
    const auto run = run_limited(mb, dir / "out.json", dir / "small", true);
    ASSERT_TRUE(run.exit_code == 0 || run.exit_code == 6) << run.exit_code << "\n" << run.err;
    EXPECT_NE(run.err.find("the 72B model failed"), std::string::npos) << run.err;
    if (run.exit_code != 0) continue;
    ++answered_runs;
    size_t fell_back = 0;
    for (const auto& item : run.results) {
      SCOPED_TRACE(item.dump());
      EXPECT_NE(item["answer"].get<std::string>().rfind("[drivevqa error]", 0), 0u);
      if (item["model_routed"] == "72B") {
        EXPECT_EQ(item["model_used"], "7B_fallback");
        ++fell_back;
      }
    }
    EXPECT_GE(fell_back, 3u);
  }
  EXPECT_GE(answered_runs, 2u) << "the sweep never reached a limit where the 7B model fits";

  const auto without = run_limited(1600, dir / "without.json", dir / "small", false);
  ASSERT_EQ(without.exit_code, 0) << without.err;
  for (const auto& item : without.results) {
    SCOPED_TRACE(item.dump());
    if (item["model_routed"] == "72B") {
      EXPECT_EQ(item["answer"].get<std::string>().rfind("[drivevqa error] the 72B model is unavailable", 0), 0u);
    } else {
      EXPECT_EQ(item["model_used"], "7B");
    }
  }
}

TEST_F(MemoryLimit, AModelThatDoesNotFitIsRefusedBeforeItLoadsNamingTheLimit) {
  const auto dir = test::scratch_dir("memory-refused");
  const auto run = run_limited(600, dir / "out.json", "", true);  // the tiny model's plan needs ~765 MiB
  ASSERT_EQ(run.exit_code, 6) << run.err;
  EXPECT_NE(run.err.find("ulimit -v"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("KV cache"), std::string::npos) << run.err;
  EXPECT_EQ(run.err.find("answered"), std::string::npos) << "refused before any work: " << run.err;
}

// A memory cgroup of its own (v1 or v2, where this machine lets a test make one) holding a run:
// below what the model needs the run is refused (exit 6) instead of being killed by the kernel.
TEST(MemoryCgroup, ARunInASmallCgroupIsRefusedNotKilled) {
  const bool v2 = fs::exists("/sys/fs/cgroup/cgroup.controllers");
  const fs::path group = v2 ? fs::path("/sys/fs/cgroup") / ("drivevqa-test-" + std::to_string(::getpid()))
                            : fs::path("/sys/fs/cgroup/memory") / ("drivevqa-test-" + std::to_string(::getpid()));
  std::error_code ec;
  if (!fs::create_directory(group, ec) || ec) GTEST_SKIP() << "cannot make a memory cgroup here: " << ec.message();
  const char* limit_file = v2 ? "memory.max" : "memory.limit_in_bytes";
  // The tiny model at full resolution plans ~580 MiB of written memory (its weights are mapped).
  std::ofstream(group / limit_file) << 450 * 1024 * 1024 << "\n";
  if (test::read_text(group / limit_file).rfind("471859200", 0) != 0) {
    fs::remove(group, ec);
    GTEST_SKIP() << "this cgroup does not take a memory limit";
  }
  const auto dir = test::scratch_dir("memory-cgroup");
  const std::string cmd = "echo $$ > '" + (group / "cgroup.procs").string() + "' && exec '" + test::drivevqa_binary() +
                          "' run --json_file '" + (test::demo_dir() / "questions.json").string() + "' --image_base_dir '" +
                          test::demo_dir().string() + "' --output_file '" + (dir / "out.json").string() + "' --model_7b '" +
                          test::tiny_model_dir().string() + "' -t 2 --max_new_tokens_cap 3 --limit 4";
  const auto r = test::run_process({"/bin/sh", "-c", cmd});
  fs::remove(group, ec);
  EXPECT_EQ(r.exit_code, 6) << r.err;
  EXPECT_NE(r.err.find("the memory cgroup's limit"), std::string::npos) << r.err;
}

void write_file(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

TEST(MemoryHeadroomFiles, MeminfoCountsAvailableAndSwap) {
  EXPECT_EQ(meminfo_available("MemTotal:  100 kB\nMemAvailable:   2048 kB\nSwapFree:  1024 kB\n"), uint64_t{3072} * 1024);
  EXPECT_EQ(meminfo_available("MemAvailable: 10 kB\n"), uint64_t{10} * 1024);
  EXPECT_EQ(meminfo_available("MemTotal: 100 kB\nMemFree: 50 kB\n"), std::nullopt);
  // A key that only ends like another is not it.
  EXPECT_EQ(meminfo_available("XMemAvailable: 10 kB\n"), std::nullopt);
}

TEST(MemoryHeadroomFiles, CgroupV2TakesTheTightestLevelLessItsWorkingSet) {
  const auto root = test::scratch_dir("cgroup-v2");
  write_file(root / "memory.max", "max\n");  // the root sets no limit
  write_file(root / "memory.current", "999999999\n");
  write_file(root / "jobs" / "memory.max", "1000000000\n");
  write_file(root / "jobs" / "memory.current", "400000000\n");
  write_file(root / "jobs" / "memory.stat", "anon 1\ninactive_file 100000000\nactive_file 5\n");
  write_file(root / "jobs" / "one" / "memory.max", "max\n");
  write_file(root / "jobs" / "one" / "memory.current", "10\n");
  // jobs: 1e9 - (4e8 - 1e8) = 7e8 left; "one" sets no limit of its own.
  EXPECT_EQ(cgroup_headroom(root, "/jobs/one", true), uint64_t{700000000});
  write_file(root / "jobs" / "one" / "memory.max", "500000000\n");
  write_file(root / "jobs" / "one" / "memory.current", "450000000\n");
  EXPECT_EQ(cgroup_headroom(root, "/jobs/one", true), uint64_t{50000000});
  EXPECT_EQ(cgroup_headroom(root, "/", true), std::nullopt);
}

TEST(MemoryHeadroomFiles, CgroupV1ReadsItsOwnFilesAndTreatsHugeAsNoLimit) {
  const auto root = test::scratch_dir("cgroup-v1");
  write_file(root / "memory.limit_in_bytes", "9223372036854771712\n");
  write_file(root / "memory.usage_in_bytes", "5\n");
  write_file(root / "box" / "memory.limit_in_bytes", "2000000000\n");
  write_file(root / "box" / "memory.usage_in_bytes", "2100000000\n");
  write_file(root / "box" / "memory.stat", "cache 1\ntotal_inactive_file 50000000\n");
  EXPECT_EQ(cgroup_headroom(root, "/", false), std::nullopt);
  EXPECT_EQ(cgroup_headroom(root, "/box", false), uint64_t{0}) << "over the limit leaves nothing";
  write_file(root / "box" / "memory.usage_in_bytes", "1000000000\n");
  EXPECT_EQ(cgroup_headroom(root, "box/", false), uint64_t{1050000000});
}

}  // namespace
}  // namespace drivevqa
