// Crash safety of `drivevqa run`: real processes killed with SIGKILL and re-run.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "support/test_support.h"

namespace drivevqa {
namespace {

using test::journal_lines;

std::vector<std::string> run_args(const std::filesystem::path& out, const std::string& extra_seed = "888") {
  return {test::drivevqa_binary(), "run", "--json_file", (test::demo_dir() / "questions.json").string(),
          "--image_base_dir", test::demo_dir().string(), "--output_file", out.string(), "--model_7b",
          test::tiny_model_dir().string(), "--dtype", "fp16", "--image_max_tokens", "32", "--max_new_tokens_cap",
          "6", "--limit", "24", "-t", "2", "--seed", extra_seed};
}

TEST(Resume, KilledRunsResumeToTheSameResults) {
  const auto dir = test::scratch_dir("resume");
  const auto reference = dir / "reference.json";
  ASSERT_EQ(test::run_process(run_args(reference)).exit_code, 0);

  const auto out = dir / "killed.json";
  const auto journal = dir / "killed.json.journal";
  // Kill after the header plus 2, 7 and 15 answers (and once right at start-up).
  for (size_t lines : {0u, 3u, 8u, 16u}) {
    const int pid = test::spawn_process(run_args(out));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (journal_lines(journal).size() < lines && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::kill(pid, SIGKILL);
    EXPECT_EQ(test::wait_process(pid), -1 - SIGKILL) << "the run finished before it could be killed";
    EXPECT_FALSE(std::filesystem::exists(out)) << "no results file before the run completes";
  }
  const auto final_run = test::run_process(run_args(out));
  ASSERT_EQ(final_run.exit_code, 0) << final_run.err;
  EXPECT_NE(final_run.err.find("from the journal"), std::string::npos);
  EXPECT_EQ(test::read_text(out), test::read_text(reference));

  // Each item was answered exactly once across all the runs.
  std::ifstream in(journal);
  std::string line;
  std::getline(in, line);  // header
  std::multiset<size_t> indices;
  while (std::getline(in, line)) indices.insert(nlohmann::json::parse(line).at("index").get<size_t>());
  EXPECT_EQ(indices.size(), 24u);
  EXPECT_EQ(std::set<size_t>(indices.begin(), indices.end()).size(), 24u);
}

// Sampled answers are promised equal for the same flags, --parallel included (README
// "Reproducibility"); a frame the journal holds in part is decoded whole again, so its batches, and
// with them the last bits of every logit, are those of the uninterrupted run.
TEST(Resume, ASampledRunKilledInsideAFrameResumesToTheUninterruptedAnswers) {
  const auto dir = test::scratch_dir("resume-sampled");
  auto args_for = [](const std::filesystem::path& out) {
    auto args = run_args(out);
    args.insert(args.end(), {"--do_sample", "--temperature", "0.9", "--parallel", "3",
                             "--stats_json", out.string() + ".stats"});
    return args;
  };
  const auto reference = dir / "reference.json";
  ASSERT_EQ(test::run_process(args_for(reference)).exit_code, 0);

  const auto out = dir / "killed.json";
  const auto journal = dir / "killed.json.journal";
  const int pid = test::spawn_process(args_for(out));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (journal_lines(journal).size() < 5 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ::kill(pid, SIGKILL);
  ASSERT_EQ(test::wait_process(pid), -1 - SIGKILL) << "the run finished before it could be killed";
  // Answers of the first frame (items 0-16) in the journal; the planted broken items are journaled
  // first, as error answers that belong to no frame.
  size_t journaled = 0;
  const auto lines = journal_lines(journal);
  for (size_t i = 1; i < lines.size(); ++i) {
    const auto entry = nlohmann::json::parse(lines[i], nullptr, false);
    if (!entry.is_discarded() && entry.value("index", size_t{99}) < 17) ++journaled;
  }

  const auto resumed = test::run_process(args_for(out));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(test::read_text(out), test::read_text(reference));
  const auto stats = nlohmann::json::parse(test::read_text(out.string() + ".stats"));
  std::printf("killed after %zu journaled answers of the first frame; the resumed run decoded %d of them again, %d came out different\n",
              journaled, stats["replayed"].get<int>(), stats["replay_mismatches"].get<int>());
  EXPECT_EQ(stats["replay_mismatches"].get<int>(), 0);
  // The first frame has 17 questions: a kill inside it leaves its journaled answers to be decoded again.
  if (journaled > 0 && journaled < 17) EXPECT_EQ(stats["replayed"].get<size_t>(), journaled);

  // Other batches could sample other answers: that journal is not continued with another --parallel.
  auto other_batches = args_for(out);
  other_batches[std::find(other_batches.begin(), other_batches.end(), "3") - other_batches.begin()] = "2";
  const auto refused = test::run_process(other_batches);
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
  EXPECT_NE(refused.err.find("--overwrite"), std::string::npos) << refused.err;
}

TEST(Resume, JournalOfOtherSettingsIsNeverMixedIn) {
  const auto dir = test::scratch_dir("resume-mismatch");
  const auto out = dir / "out.json";
  ASSERT_EQ(test::run_process(run_args(out)).exit_code, 0);
  const auto other = test::run_process(run_args(out, "889"));  // another sampling seed
  EXPECT_EQ(other.exit_code, 2);
  EXPECT_NE(other.err.find("--overwrite"), std::string::npos) << other.err;
  auto args = run_args(out, "889");
  args.push_back("--overwrite");
  const auto fresh = test::run_process(args);
  EXPECT_EQ(fresh.exit_code, 0) << fresh.err;
  EXPECT_NE(fresh.err.find("24 answered now"), std::string::npos) << fresh.err;
}

TEST(Resume, TornLastLineIsDropped) {
  const auto dir = test::scratch_dir("resume-torn");
  const auto out = dir / "out.json";
  ASSERT_EQ(test::run_process(run_args(out)).exit_code, 0);
  const std::string reference = test::read_text(out);
  // Cut the journal in the middle of its last line, as a kill during the write would.
  const auto journal = dir / "out.json.journal";
  const std::string text = test::read_text(journal);
  std::ofstream(journal, std::ios::binary | std::ios::trunc) << text.substr(0, text.size() - 20);
  std::filesystem::remove(out);
  const auto again = test::run_process(run_args(out));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("1 answered now, 23 from the journal"), std::string::npos) << again.err;
  EXPECT_EQ(test::read_text(out), reference);
}

}  // namespace
}  // namespace drivevqa
