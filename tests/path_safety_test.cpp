// Nothing a user types can destroy a file: every path of a run is checked against every other
// before anything is written (util/path_roles.h), created files never follow planted links
// (util/atomic_file.h, results/journal.h), two runs never share one journal, and numeric flags
// that could crash or poison the engine are refused at parse time. Real processes, real files.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "support/test_support.h"
#include "util/error.h"
#include "util/path_roles.h"

namespace drivevqa {
namespace {

using test::write_bytes;
namespace fs = std::filesystem;

// A scratch copy of everything a run reads, so that a failed check can only damage copies.
class PathSafety : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir(std::string("paths-") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::copy_file(test::demo_dir() / "questions.json", questions());
    write_bytes(kb(), R"([{"scene_token":"s","frame_token":"f","question":"Is it safe?","answer":"Yes."}])");
    write_bytes(prompts(), "{}\n");
    fs::create_directory(model());
    // Links, not copies: the tiny model is 160 MB; identity checks follow links to the real files.
    fs::create_symlink(test::tiny_model_dir() / "model.gguf", model() / "model.gguf");
    fs::create_symlink(test::tiny_model_dir() / "mmproj.gguf", model() / "mmproj.gguf");
  }

  fs::path questions() const { return dir_ / "questions.json"; }
  fs::path kb() const { return dir_ / "kb.json"; }
  fs::path prompts() const { return dir_ / "prompts.json"; }
  fs::path model() const { return dir_ / "model"; }
  fs::path image() const { return test::first_frame_images()[0]; }

  std::vector<std::string> run_args(const fs::path& out, const std::vector<std::string>& extra = {},
                                    const std::string& limit = "6") const {
    std::vector<std::string> args{test::drivevqa_binary(), "run", "--json_file", questions().string(),
                                  "--image_base_dir", test::demo_dir().string(), "--output_file", out.string(),
                                  "--model_7b", model().string(), "--dtype", "fp16", "--image_max_tokens", "32",
                                  "--max_new_tokens_cap", "4", "--limit", limit, "-t", "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  // Runs the 6 items once; returns the results and leaves the journal's lines in `lines`.
  std::string answered_once(const fs::path& out, std::vector<std::string>& lines) const {
    EXPECT_EQ(test::run_process(run_args(out)).exit_code, 0);
    lines = test::journal_lines(out.string() + ".journal");
    EXPECT_EQ(lines.size(), 7u);
    return test::read_text(out);
  }
  // Runs again with --stats_json; returns the stats.
  nlohmann::json run_again(const fs::path& out) const {
    const fs::path stats = dir_ / "stats.json";
    const auto again = test::run_process(run_args(out, {"--stats_json", stats.string()}));
    EXPECT_EQ(again.exit_code, 0) << again.err;
    return nlohmann::json::parse(test::read_text(stats));
  }

  fs::path dir_;
};

struct FileState {
  std::string bytes;
  ino_t inode = 0;
};

FileState state_of(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return {test::read_text(path), st.st_ino};
}

void expect_refused(const test::ProcessResult& r, const std::vector<std::string>& names) {
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  for (const std::string& name : names) EXPECT_NE(r.err.find(name), std::string::npos) << name << " in: " << r.err;
}

TEST_F(PathSafety, EveryOutputThatIsAlsoAnInputIsRefusedAndTheInputKept) {
  struct Case {
    std::string input_flag;
    fs::path input;
  };
  const std::vector<Case> inputs = {{"--json_file", questions()}, {"--kb_file", kb()},          {"--prompts", prompts()},
                                    {"--model_7b", model() / "model.gguf"}, {"--model_7b", model() / "mmproj.gguf"},
                                    {"image of item", image()}};
  const std::vector<std::string> read_flags = {"--kb_file", kb().string(), "--prompts", prompts().string()};
  for (const Case& in : inputs) {
    const FileState before = state_of(in.input);
    // Each output flag in turn names the input, also through "./", an absolute path and a link.
    const fs::path link = dir_ / "link-to-input";
    fs::remove(link);
    fs::create_symlink(in.input, link);
    const std::vector<std::pair<std::string, fs::path>> outputs = {
        {"--output_file", in.input},
        {"--output_file", link},
        {"--stats_json", fs::path(".") / fs::relative(in.input)},
        {"--kb_index", fs::absolute(in.input)}};
    for (const auto& [flag, path] : outputs) {
      std::vector<std::string> extra = read_flags;
      fs::path out = dir_ / "out.json";
      if (flag == "--output_file") {
        out = path;
      } else {
        extra.insert(extra.end(), {flag, path.string()});
      }
      SCOPED_TRACE(flag + " = " + in.input_flag + " " + path.string());
      expect_refused(test::run_process(run_args(out, extra)), {flag, in.input_flag});
      const FileState after = state_of(in.input);
      EXPECT_EQ(after.bytes, before.bytes);
      EXPECT_EQ(after.inode, before.inode);
    }
  }
  EXPECT_FALSE(fs::exists(dir_ / "out.json.journal")) << "nothing is written before the check";
}

TEST_F(PathSafety, TwoOutputsNamingOneFileAreRefused) {
  const fs::path out = dir_ / "out.json";
  write_bytes(dir_ / "stats.json", "{\"mine\": 1}\n");
  fs::create_hard_link(dir_ / "stats.json", dir_ / "stats-hardlink.json");
  const std::vector<std::vector<std::string>> pairs = {
      {"--stats_json", out.string()},
      {"--kb_file", kb().string(), "--kb_index", out.string()},
      {"--kb_file", kb().string(), "--stats_json", (dir_ / "stats.json").string(), "--kb_index",
       (dir_ / "stats-hardlink.json").string()},
      {"--stats_json", out.string() + ".journal"},
      {"--dump_prompts", out.string()},
  };
  for (const auto& extra : pairs) {
    SCOPED_TRACE(extra[extra.size() - 2] + " " + extra.back());
    const auto r = test::run_process(run_args(out, extra));
    expect_refused(r, {extra[extra.size() - 2]});
  }
  EXPECT_EQ(test::read_text(dir_ / "stats.json"), "{\"mine\": 1}\n");
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(PathSafety, AQuestionFileNamedLikeTheJournalIsNeverTruncated) {
  // out.json.journal is the question file: even with --overwrite (the advice of another error).
  const fs::path named_like_journal = dir_ / "out.json.journal";
  fs::copy_file(questions(), named_like_journal);
  const FileState before = state_of(named_like_journal);
  auto args = run_args(dir_ / "out.json", {"--overwrite"});
  args[3] = named_like_journal.string();
  expect_refused(test::run_process(args), {"journal", "--json_file"});
  EXPECT_EQ(state_of(named_like_journal).bytes, before.bytes);
}

TEST_F(PathSafety, OutputsThatAreDevicesFifosOrFoldersAreRefused) {
  const fs::path fifo = dir_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  fs::create_directory(dir_ / "folder");
  for (const auto& [out, words] : std::vector<std::pair<fs::path, std::string>>{
           {"/dev/null", "is a device"}, {fifo, "FIFO"}, {dir_ / "folder", "is a folder"}}) {
    SCOPED_TRACE(out.string());
    expect_refused(test::run_process(run_args(out)), {out.string(), words});
  }
  struct stat st {};
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode)) << "/dev/null is still a device";
  EXPECT_TRUE(fs::is_fifo(fifo));
  // The stats file too, and before any model is loaded (the model folder here has no model).
  const auto r = test::run_process(run_args(dir_ / "out.json", {"--stats_json", "/dev/null"}));
  expect_refused(r, {"--stats_json", "is a device"});
}

TEST_F(PathSafety, PlantedLinksAtCreatedPathsAreNeverFollowed) {
  const fs::path victim = dir_ / "victim.txt";
  write_bytes(victim, "precious\n");
  const fs::path out = dir_ / "out.json";
  // The results' temporary file, a probe, and the stats file's: links with the old fixed names.
  for (const char* suffix : {".partial", ".probe", ".tmp"}) fs::create_symlink(victim, out.string() + suffix);
  fs::create_symlink(victim, dir_ / "stats.json");
  fs::create_symlink(victim, dir_ / "stats.json.partial");
  const auto ok = test::run_process(run_args(out, {"--stats_json", (dir_ / "stats.json").string()}));
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(test::read_text(victim), "precious\n");
  EXPECT_FALSE(fs::is_symlink(dir_ / "stats.json")) << "the link is replaced by the stats file, not written through";
  EXPECT_TRUE(nlohmann::json::parse(test::read_text(dir_ / "stats.json")).contains("items"));
  // A link at the journal's path: refused, the target untouched.
  const fs::path out2 = dir_ / "out2.json";
  fs::create_symlink(victim, out2.string() + ".journal");
  expect_refused(test::run_process(run_args(out2)), {"symbolic link"});
  EXPECT_EQ(test::read_text(victim), "precious\n");
  EXPECT_FALSE(fs::exists(out2));
  // A link as the output itself is replaced (rename), its target kept.
  const fs::path out3 = dir_ / "out3.json";
  fs::create_symlink(victim, out3);
  ASSERT_EQ(test::run_process(run_args(out3)).exit_code, 0);
  EXPECT_EQ(test::read_text(victim), "precious\n");
  EXPECT_FALSE(fs::is_symlink(out3));
}

TEST_F(PathSafety, ASecondRunOnTheSameOutputExitsAtOnce) {
  const fs::path out = dir_ / "out.json";
  const fs::path journal = out.string() + ".journal";
  const int first = test::spawn_process(run_args(out, {}, "12"));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (test::journal_lines(journal).empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const auto started = std::chrono::steady_clock::now();
  const auto second = test::run_process(run_args(out, {}, "12"));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const int first_exit = test::wait_process(first);
  ASSERT_EQ(first_exit, 0);
  EXPECT_EQ(second.exit_code, 2) << second.err;
  EXPECT_NE(second.err.find("another drivevqa run"), std::string::npos) << second.err;
  EXPECT_NE(second.err.find(journal.string()), std::string::npos) << second.err;
  EXPECT_LT(seconds, 5.0);
  // The journal holds each of the 12 answers once: nothing duplicated or torn.
  const auto lines = test::journal_lines(journal);
  ASSERT_EQ(lines.size(), 13u);
  std::set<size_t> indices;
  for (size_t i = 1; i < lines.size(); ++i) indices.insert(nlohmann::json::parse(lines[i]).at("index").get<size_t>());
  EXPECT_EQ(indices.size(), 12u);
}

TEST_F(PathSafety, AJournalEntryNamingAnotherItemIsNotReused) {
  const fs::path out = dir_ / "out.json";
  std::vector<std::string> lines;
  const std::string reference = answered_once(out, lines);
  ASSERT_EQ(lines.size(), 7u);
  // A hand edit: entry 2 now claims another item's identity, with a forged answer.
  nlohmann::json entry = nlohmann::json::parse(lines[3]);
  ASSERT_EQ(entry.at("index"), 2);
  entry["item"] = "0000000000000000-1";
  entry["answer"] = "FORGED";
  lines[3] = entry.dump();
  std::string text;
  for (const auto& line : lines) text += line + "\n";
  write_bytes(out.string() + ".journal", text);
  const nlohmann::json stats = run_again(out);
  EXPECT_EQ(test::read_text(out).find("FORGED"), std::string::npos);
  EXPECT_EQ(test::read_text(out), reference) << "the item was answered again, as in the first run";
  EXPECT_EQ(stats.at("journal_mismatches"), 1);
  EXPECT_EQ(stats.at("from_journal"), 5);
}

TEST_F(PathSafety, AHundredThousandDeepJournalLineEndsTheTrustedPrefix) {
  const fs::path out = dir_ / "out.json";
  std::vector<std::string> lines;
  const std::string reference = answered_once(out, lines);
  ASSERT_EQ(lines.size(), 7u);
  std::string text = lines[0] + "\n" + lines[1] + "\n" + std::string(100'000, '[') + std::string(100'000, ']') + "\n";
  for (size_t i = 2; i < lines.size(); ++i) text += lines[i] + "\n";  // never trusted: after the bad line
  write_bytes(out.string() + ".journal", text);
  const nlohmann::json stats = run_again(out);
  EXPECT_EQ(test::read_text(out), reference);
  EXPECT_EQ(stats.at("from_journal"), 1);
}

TEST_F(PathSafety, NumericFlagsThatCouldCrashOrPoisonTheEngineAreRefused) {
  const std::vector<std::vector<std::string>> bad = {
      {"--threads", "100000"}, {"-t", "-1"},          {"--temperature", "nan"}, {"--temperature", "inf"},
      {"--temperature", "-1"}, {"--top_p", "nan"},    {"--top_p", "1.5"},       {"--top_k", "-3"},
      {"--temperature", "1e400"}};
  for (const auto& extra : bad) {
    SCOPED_TRACE(extra[0] + " " + extra[1]);
    auto args = run_args(dir_ / "out.json");
    // Later flags win in CLI11 only for vectors: replace -t 2 instead of adding a second value.
    if (extra[0] == "--threads" || extra[0] == "-t") args.resize(args.size() - 2);
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = test::run_process(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find(extra[0].substr(extra[0].find_first_not_of('-'))), std::string::npos) << r.err;
  }
  const auto ask = test::run_process({test::drivevqa_binary(), "ask", "--model", model().string(), "--images",
                                      image().string(), "--threads", "100000", "What is ahead?"});
  EXPECT_EQ(ask.exit_code, 2) << ask.err;
}

TEST_F(PathSafety, OutputProblemsAreFoundBeforeAnyModelLoadsAndSaidPlainly) {
  // No model at all: any check that came after loading would report the model instead.
  fs::remove(model() / "model.gguf");
  const auto missing_folder = test::run_process(run_args(dir_ / "out.json", {"--stats_json", (dir_ / "no/such/s.json").string()}));
  EXPECT_EQ(missing_folder.exit_code, 5) << missing_folder.err;
  EXPECT_NE(missing_folder.err.find("does not exist"), std::string::npos) << missing_folder.err;
  fs::create_directory(dir_ / "stats-folder");
  const auto folder = test::run_process(run_args(dir_ / "out.json", {"--stats_json", (dir_ / "stats-folder").string()}));
  EXPECT_EQ(folder.exit_code, 2) << folder.err;
  EXPECT_NE(folder.err.find("is a folder"), std::string::npos) << folder.err;
  // The model itself: exit 4 as the README's table says, once the outputs are known to be fine.
  const auto no_model = test::run_process(run_args(dir_ / "out.json"));
  EXPECT_EQ(no_model.exit_code, 4) << no_model.err;
  if (::geteuid() != 0) {  // root may write anywhere
    fs::create_directory(dir_ / "locked");
    fs::permissions(dir_ / "locked", fs::perms::owner_read | fs::perms::owner_exec);
    const auto denied = test::run_process(run_args(dir_ / "locked" / "out.json"));
    EXPECT_EQ(denied.exit_code, 5) << denied.err;
    EXPECT_NE(denied.err.find("Permission denied"), std::string::npos) << denied.err;
  }
}

TEST_F(PathSafety, MissingOrUnreadableModelAndAdapterFilesAreExitFour) {
  // An adapter folder whose weights are missing, and a Hugging Face folder whose index names a
  // shard that is not there: both are model files (README "Exit codes": 4), not question input.
  fs::create_directory(dir_ / "lora");
  write_bytes(dir_ / "lora" / "adapter_config.json",
              R"({"peft_type":"LORA","r":2,"lora_alpha":4,"target_modules":["q_proj"]})");
  const auto lora = test::run_process(
      run_args(dir_ / "out.json", {"--use_lora_7b", "--lora_7b_dir", (dir_ / "lora").string()}));
  EXPECT_EQ(lora.exit_code, 4) << lora.err;
  EXPECT_NE(lora.err.find((dir_ / "lora").string()), std::string::npos) << lora.err;
  fs::create_directory(dir_ / "hf");
  write_bytes(dir_ / "hf" / "config.json", R"({"model_type":"qwen2_5_vl"})");
  write_bytes(dir_ / "hf" / "model.safetensors.index.json",
              R"({"weight_map":{"model.embed_tokens.weight":"model-00001-of-00002.safetensors"}})");
  auto args = run_args(dir_ / "out.json", {"--cache_dir", (dir_ / "cache").string()});
  args[9] = (dir_ / "hf").string();  // --model_7b
  const auto hf = test::run_process(args);
  EXPECT_EQ(hf.exit_code, 4) << hf.err;
}

TEST(PathRoles, IdentityIsTheFileNotItsName) {
  const fs::path dir = test::scratch_dir("path-roles");
  write_bytes(dir / "a.json", "[]");
  fs::create_hard_link(dir / "a.json", dir / "hard.json");
  PathRoles ok;
  ok.read("--in", dir / "a.json");
  ok.write("--out", dir / "b.json");
  ok.write("--stats", dir / "sub" / ".." / "c.json");
  EXPECT_NO_THROW(ok.check());
  PathRoles hard;
  hard.read("--in", dir / "a.json");
  hard.write("--out", dir / "hard.json");
  EXPECT_THROW(hard.check(), UsageError);
  PathRoles not_yet_created;  // the same new file by two spellings
  not_yet_created.write("--out", dir / "new.json");
  not_yet_created.write("--stats", dir / "." / "new.json");
  EXPECT_THROW(not_yet_created.check(), UsageError);
  PathRoles empty_ignored;
  empty_ignored.read("--in", "");
  empty_ignored.write("--out", "");
  EXPECT_NO_THROW(empty_ignored.check());
}

}  // namespace
}  // namespace drivevqa
