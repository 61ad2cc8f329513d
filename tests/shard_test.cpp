// Sharded runs: `run --shard K/N` over whole frames, and `merge` joining the shards' results.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <map>
#include <set>
#include <thread>

#include "dataset/question_file.h"
#include "dataset/shard.h"
#include "results/merge.h"
#include "support/test_support.h"
#include "util/error.h"

namespace drivevqa {
namespace {

namespace fs = std::filesystem;
using Env = std::map<std::string, std::string>;

EnvironmentLookup lookup(const Env& env) {
  return [env](const std::string& name) -> std::optional<std::string> {
    const auto it = env.find(name);
    return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
}

std::string shard_text(const std::string& flag, size_t num_shards = 0, const Env& env = {}) {
  const auto spec = resolve_shard(flag, num_shards, lookup(env));
  return spec ? spec->text() : "none";
}

TEST(Shard, FlagIsKOfNFromZeroOrAutoFromTheBatchSystem) {
  EXPECT_EQ(shard_text(""), "none");
  EXPECT_EQ(shard_text("0/4"), "0/4");
  EXPECT_EQ(shard_text("3/4"), "3/4");
  EXPECT_EQ(shard_text("0/1"), "0/1");
  for (const char* bad : {"4/4", "1/0", "a/4", "-1/4", "1/-4", "1 /4", "1/4/2", "1", "/4", "1/", "auto2"}) {
    EXPECT_THROW(shard_text(bad), UsageError) << bad;
  }
  // Slurm: the task's place in the array, whatever its first id and step.
  EXPECT_EQ(shard_text("auto", 0, {{"SLURM_ARRAY_TASK_ID", "2"}, {"SLURM_ARRAY_TASK_COUNT", "4"}}), "2/4");
  EXPECT_EQ(shard_text("auto", 0, {{"SLURM_ARRAY_TASK_ID", "3"}, {"SLURM_ARRAY_TASK_COUNT", "4"}, {"SLURM_ARRAY_TASK_MIN", "1"}}),
            "2/4");
  EXPECT_EQ(shard_text("auto", 0,
                       {{"SLURM_ARRAY_TASK_ID", "9"}, {"SLURM_ARRAY_TASK_COUNT", "5"}, {"SLURM_ARRAY_TASK_MIN", "1"},
                        {"SLURM_ARRAY_TASK_STEP", "2"}}),
            "4/5");
  EXPECT_THROW(shard_text("auto", 0, {{"SLURM_ARRAY_TASK_ID", "2"}}), UsageError);  // no count
  EXPECT_THROW(shard_text("auto", 0, {{"SLURM_ARRAY_TASK_ID", "x"}, {"SLURM_ARRAY_TASK_COUNT", "4"}}), UsageError);
  EXPECT_THROW(shard_text("auto", 0, {{"SLURM_ARRAY_TASK_ID", "4"}, {"SLURM_ARRAY_TASK_COUNT", "4"}}), UsageError);
  EXPECT_THROW(shard_text("auto", 4, {{"SLURM_ARRAY_TASK_ID", "1"}, {"SLURM_ARRAY_TASK_COUNT", "4"}}), UsageError);
  // Kubernetes Indexed Job: the completion index, with the count given.
  EXPECT_EQ(shard_text("auto", 8, {{"JOB_COMPLETION_INDEX", "7"}}), "7/8");
  EXPECT_THROW(shard_text("auto", 0, {{"JOB_COMPLETION_INDEX", "7"}}), UsageError);
  EXPECT_THROW(shard_text("auto", 8, {{"JOB_COMPLETION_INDEX", "8"}}), UsageError);
  EXPECT_THROW(shard_text("auto"), UsageError);
  EXPECT_THROW(shard_text("1/4", 4), UsageError);
  EXPECT_THROW(shard_text("", 4), UsageError);
  try {
    shard_text("auto");
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("SLURM_ARRAY_TASK_ID"), std::string::npos) << e.what();
  }
}

QuestionItem item_of_frame(size_t index, const std::string& frame, const std::string& question) {
  QuestionItem item;
  item.index = index;
  item.frame_token = frame;
  item.question = question;
  item.original = {{"frame_token", frame}, {"question", question}};
  return item;
}

// The assignment is fixed by the frame token's bytes alone: these values hold on every machine
// and build, so shards computed on different hosts never overlap.
TEST(Shard, AssignmentIsAStableFunctionOfTheFrame) {
  EXPECT_EQ(shard_of(item_of_frame(0, "c0dcac4bd1a0297992065423908a31a8", "q"), 4), 0u);
  EXPECT_EQ(shard_of(item_of_frame(5, "c0dcac4bd1a0297992065423908a31a8", "other"), 4), 0u);
  EXPECT_EQ(shard_of(item_of_frame(0, "530c955b05b60525e94fb6e372db8190", "q"), 4), 3u);
  EXPECT_EQ(shard_of(item_of_frame(0, "530c955b05b60525e94fb6e372db8190", "q"), 1000), 0x98d8e90e99499cdbull % 1000);
  QuestionItem no_token = item_of_frame(0, "", "q");  // its image files stand for the frame
  no_token.images = {{"CAM_FRONT", "a/front.jpg"}, {"CAM_BACK", "a/back.jpg"}};
  QuestionItem same_images = item_of_frame(1, "", "other question");
  same_images.images = no_token.images;
  EXPECT_EQ(shard_of(no_token, 1000), shard_of(same_images, 1000));
  EXPECT_EQ(shard_frame_identity(no_token), "a/front.jpg\na/back.jpg\n");
  // With img_paths in the item, the paths as written decide, whatever --image_base_dir joined them to.
  QuestionItem here = item_of_frame(0, "", "q"), there = here;
  here.original["img_paths"] = there.original["img_paths"] = {{"CAM_FRONT", "samples/f.jpg"}};
  here.images = {{"CAM_FRONT", "/scratch/node1/samples/f.jpg"}};
  there.images = {{"CAM_FRONT", "/data/nuscenes/samples/f.jpg"}};
  EXPECT_EQ(shard_frame_identity(here), shard_frame_identity(there));

  // 1,000 frames of 3 questions over 8 shards: each item in exactly one shard, frames whole, and
  // no shard far from an eighth.
  std::vector<QuestionItem> items;
  for (size_t f = 0; f < 1000; ++f) {
    for (size_t q = 0; q < 3; ++q) items.push_back(item_of_frame(items.size(), "frame-" + std::to_string(f * 7919), "q" + std::to_string(q)));
  }
  std::map<size_t, size_t> owner;                  // item -> shard
  std::map<std::string, std::set<size_t>> frames;  // frame -> shards
  for (size_t k = 0; k < 8; ++k) {
    const std::vector<QuestionItem> shard = items_in_shard(items, {k, 8});
    EXPECT_GT(shard.size(), 3 * 1000 / 8 * 3 / 4);
    EXPECT_LT(shard.size(), 3 * 1000 / 8 * 5 / 4);
    for (size_t i = 1; i < shard.size(); ++i) EXPECT_LT(shard[i - 1].index, shard[i].index) << "input order kept";
    for (const QuestionItem& item : shard) {
      EXPECT_TRUE(owner.emplace(item.index, k).second) << "item " << item.index << " in two shards";
      frames[item.frame_token].insert(k);
    }
  }
  EXPECT_EQ(owner.size(), items.size());
  for (const auto& [frame, shards] : frames) EXPECT_EQ(shards.size(), 1u) << frame << " split";
}

// A question file's items as `run` answers them: the original object plus the added fields.
nlohmann::ordered_json answered(const QuestionItem& item, const std::string& answer) {
  nlohmann::ordered_json j = item.original;
  j["subtask"] = "Perception";
  j["model_routed"] = "7B";
  j["model_used"] = "7B";
  j["answer"] = answer;
  return j;
}

std::string merge_error(const std::vector<QuestionItem>& questions, const std::vector<ResultsInput>& inputs) {
  try {
    merge_results(questions, inputs);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(Merge, EveryItemExactlyOnceInQuestionOrderElseNamesWhatIsWrong) {
  const std::vector<QuestionItem> questions = parse_question_list(
      R"([{"frame_token":"f1","question":"Q0","answer":"ground truth"},
          {"frame_token":"f2","question":"Q1"},
          {"frame_token":"f1","question":"Q2"},
          {"frame_token":"f2","question":"Q1"}])",
      "q.json", {.check_images = false});
  ASSERT_EQ(questions.size(), 4u);
  // Shard files in any order; item 3 repeats item 1 exactly and is matched in order of appearance.
  const ResultsInput a{"a.json", {answered(questions[1], "first"), answered(questions[3], "second")}};
  const ResultsInput b{"b.json", {answered(questions[0], "A"), answered(questions[2], "[drivevqa error] no image")}};
  const MergedResults merged = merge_results(questions, {a, b});
  ASSERT_EQ(merged.entries.size(), 4u);
  EXPECT_EQ(merged.entries[0]["answer"], "A");
  EXPECT_EQ(merged.entries[0].begin().key(), "frame_token");  // the entry as the shard wrote it
  EXPECT_EQ(merged.entries[1]["answer"], "first");
  EXPECT_EQ(merged.entries[2]["answer"], "[drivevqa error] no image");
  EXPECT_EQ(merged.entries[3]["answer"], "second");
  EXPECT_EQ(merged.error_answers, 1u);

  const std::string missing = merge_error(questions, {a});
  EXPECT_NE(missing.find("items no input answers (a shard missing or unfinished?) (2)"), std::string::npos) << missing;
  EXPECT_NE(missing.find("item 0 (frame f1): \"Q0\""), std::string::npos) << missing;
  EXPECT_NE(missing.find("item 2 (frame f1): \"Q2\""), std::string::npos) << missing;

  const ResultsInput again{"c.json", {answered(questions[2], "again")}};
  const std::string doubled = merge_error(questions, {a, b, again});
  EXPECT_NE(doubled.find("items answered more than once (1)"), std::string::npos) << doubled;
  EXPECT_NE(doubled.find("c.json entry 0 and b.json entry 1"), std::string::npos) << doubled;

  nlohmann::ordered_json stranger = answered(questions[0], "x");
  stranger["question"] = "not asked";
  const std::string foreign = merge_error(questions, {a, b, ResultsInput{"d.json", {stranger}}});
  EXPECT_NE(foreign.find("d.json entry 0 is not an item of the question file"), std::string::npos) << foreign;
}

TEST(Merge, ResultsFileThatIsNotAListOfAnsweredItemsIsRefused) {
  const fs::path dir = test::scratch_dir("merge-bad");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not-json.json", "[{"}, {"object.json", "{}"}, {"no-answer.json", "[{\"question\":\"q\"}]"}, {"number.json", "[1]"}};
  for (const auto& [name, text] : cases) {
    test::write_bytes(dir / name, text);
    try {
      read_results_input((dir / name).string());
      ADD_FAILURE() << name << " was read";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
}

// The demo answered by the tiny model, whole or as one shard of four.
struct ShardedDemo {
  fs::path dir;
  std::vector<std::string> args(const fs::path& out, const std::string& shard = "") const {
    std::vector<std::string> a = {test::drivevqa_binary(), "run", "--json_file", (test::demo_dir() / "questions.json").string(),
                                  "--image_base_dir", test::demo_dir().string(), "--output_file", out.string(), "--model_7b",
                                  test::tiny_model_dir().string(), "--dtype", "fp16", "--image_max_tokens", "64",
                                  "--max_new_tokens_cap", "24", "-t", "1"};
    if (!shard.empty()) a.insert(a.end(), {"--shard", shard});
    return a;
  }
  test::ProcessResult merge(const std::string& pattern, const fs::path& out) const {
    return test::run_process({test::drivevqa_binary(), "merge", "--json_file", (test::demo_dir() / "questions.json").string(),
                              "--inputs", (dir / pattern).string(), "--output_file", out.string()});
  }
};

// 4 shards as 4 processes at once, merged: the unsharded run's results file, byte for byte. A
// missing shard makes merge fail naming its items; a shard killed midway resumes on its own.
TEST(ShardedRun, FourShardProcessesMergeToTheUnshardedResults) {
  const ShardedDemo demo{test::scratch_dir("sharded-run")};
  const auto whole = test::run_process(demo.args(demo.dir / "whole.json"));
  ASSERT_EQ(whole.exit_code, 0) << whole.err;

  std::vector<int> pids;
  for (int k = 0; k < 4; ++k) {
    pids.push_back(test::spawn_process(demo.args(demo.dir / ("shard-" + std::to_string(k) + ".json"), std::to_string(k) + "/4")));
  }
  for (int pid : pids) EXPECT_EQ(test::wait_process(pid), 0);
  const auto merged = demo.merge("shard-*.json", demo.dir / "merged.json");
  ASSERT_EQ(merged.exit_code, 0) << merged.err;
  EXPECT_EQ(test::read_text(demo.dir / "merged.json"), test::read_text(demo.dir / "whole.json"));

  // Without shard 3 (the demo's last frames): exit 3, its items named.
  const auto missing = demo.merge("shard-[012].json", demo.dir / "partial.json");
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_NE(missing.err.find("items no input answers"), std::string::npos) << missing.err;
  EXPECT_NE(missing.err.find("item 20 (frame"), std::string::npos) << missing.err;
  EXPECT_FALSE(fs::exists(demo.dir / "partial.json"));

  // Shard 3 again, killed after its first answers, then run again alone: it goes on from its journal.
  const fs::path out = demo.dir / "resumed" / "shard-3.json";
  fs::create_directories(out.parent_path());
  for (int k = 0; k < 3; ++k) fs::copy_file(demo.dir / ("shard-" + std::to_string(k) + ".json"), out.parent_path() / ("shard-" + std::to_string(k) + ".json"));
  const int pid = test::spawn_process(demo.args(out, "3/4"));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (test::journal_lines(out.string() + ".journal").size() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid, SIGKILL);
  ASSERT_EQ(test::wait_process(pid), -1 - SIGKILL) << "the shard finished before it could be killed";
  const auto resumed = test::run_process(demo.args(out, "3/4"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("from the journal"), std::string::npos) << resumed.err;
  const auto merged_again = ShardedDemo{out.parent_path()}.merge("shard-*.json", demo.dir / "merged-again.json");
  ASSERT_EQ(merged_again.exit_code, 0) << merged_again.err;
  EXPECT_EQ(test::read_text(demo.dir / "merged-again.json"), test::read_text(demo.dir / "whole.json"));
}

}  // namespace
}  // namespace drivevqa
