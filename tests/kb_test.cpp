// The knowledge base: reading, the SQLite FTS5 index (reuse, rebuild), retrieval order, and the
// off / hint / override modes of `drivevqa run`.
#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <thread>
#include <signal.h>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kb/kb_index.h"
#include "pipeline/kb_examples.h"
#include "support/test_support.h"
#include "util/error.h"

namespace drivevqa {
namespace {

using OrderedJson = nlohmann::ordered_json;

void write_kb(const std::filesystem::path& path, const OrderedJson& annotations) {
  std::ofstream(path) << OrderedJson{{"annotations", annotations}}.dump(1);
}

OrderedJson note(const std::string& scene, const std::string& frame, const std::string& q, const std::string& a) {
  return {{"scene_token", scene}, {"frame_token", frame}, {"question", q}, {"answer", a}};
}

TEST(Kb, ReadingTakesUserAnnotationsAndSkipsEntriesWithoutQuestion) {
  const KbFile kb = parse_kb(R"([{"question":"q1","answer":"a1","user_annotations":{"user_annotation":"u1"}},
                                 {"question":"  ","answer":"x"}, {"answer":"y"}, 7, {"question":"q2","answer":"a2"}])",
                             "kb.json");
  ASSERT_EQ(kb.entries.size(), 2u);
  EXPECT_EQ(kb.skipped, 3u);
  EXPECT_EQ(kb.entries[0].answer, "u1");
  EXPECT_EQ(kb.entries[1].answer, "a2");
  EXPECT_THROW(parse_kb("{\"notes\": []}", "kb.json"), InputError);
  EXPECT_THROW(parse_kb("not json", "kb.json"), InputError);
  EXPECT_EQ(replace_object_refs("Is <c1,CAM_FRONT,812.4,540.0> near <c2,CAM_BACK,1,2>?"), "Is CAM_FRONT near CAM_BACK?");
  EXPECT_EQ(normalise_question("  What\tis\n\nit? "), "What is it?");
}

TEST(Kb, RetrievalPrefersTheFrameThenTheSceneAndRanksByText) {
  const auto dir = test::scratch_dir("kb-retrieval");
  write_kb(dir / "kb.json",
           {note("s1", "f1", "What is the moving status of object <c1,CAM_FRONT,10,20>?", "Going ahead."),
            note("s1", "f1", "What are the important objects in the current scene?", "A truck."),
            note("s1", "f1", "Would the pedestrian cross the road?", "No."),
            note("s1", "f2", "What is the moving status of the bus?", "Stopped."),
            note("s2", "f9", "What is the moving status of the truck?", "Turn left."),
            note("s2", "f9", "Is the traffic light green?", "Yes.")});
  const auto index = open_kb_index(dir / "kb.json", "", dir / "cache");
  // Same frame: the text-matching note first, then the frame's other notes.
  auto hits = index->retrieve("s1", "f1", "What is the moving status of object <c3,CAM_FRONT,1,1>?", 3);
  ASSERT_EQ(hits.size(), 3u);
  EXPECT_EQ(hits[0].entry.answer, "Going ahead.");
  EXPECT_EQ(hits[0].tier, "frame");
  for (const auto& h : hits) EXPECT_EQ(h.entry.frame_token, "f1");
  // Unknown frame of a known scene: only that scene's notes.
  hits = index->retrieve("s2", "f-unknown", "Is the traffic light red?", 2);
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0].entry.answer, "Yes.");
  EXPECT_EQ(hits[1].entry.answer, "Turn left.");
  // Unknown scene: the whole KB, ranked by text.
  hits = index->retrieve("s-unknown", "f-unknown", "moving status of the bus", 1);
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].entry.answer, "Stopped.");
  EXPECT_EQ(hits[0].tier, "all");
  // Exact key: scene, frame and the whitespace-normalised question.
  ASSERT_TRUE(index->exact("s1", "f1", "What  are the important objects in the current\nscene?"));
  EXPECT_FALSE(index->exact("s1", "f2", "What are the important objects in the current scene?"));
  const std::string block = kb_context_block(hits);
  EXPECT_EQ(block, "Context (human-verified notes):\n1. Stopped. [scene=s1, frame=f2]\n"
                   "Use these notes if they are relevant to the question.\n");
}

TEST(Kb, IndexIsReusedAndRebuiltWhenTheFileChanges) {
  const auto dir = test::scratch_dir("kb-reuse");
  write_kb(dir / "kb.json", OrderedJson::array({note("s", "f", "q one", "a1")}));
  const auto index_path = dir / "kb.sqlite";
  EXPECT_TRUE(open_kb_index(dir / "kb.json", index_path, dir)->rebuilt());
  EXPECT_FALSE(open_kb_index(dir / "kb.json", index_path, dir)->rebuilt());
  write_kb(dir / "kb.json", OrderedJson::array({note("s", "f", "q one", "a1"), note("s", "f", "q two", "a2")}));
  const auto changed = open_kb_index(dir / "kb.json", index_path, dir);
  EXPECT_TRUE(changed->rebuilt());
  EXPECT_EQ(changed->entries(), 2u);
  // A file at the index path that is not a complete index (a killed build, anything else) is rebuilt.
  std::ofstream(index_path, std::ios::trunc) << "SQLite format 3 but cut short";
  EXPECT_TRUE(open_kb_index(dir / "kb.json", index_path, dir)->rebuilt());
}

TEST(Kb, ADamagedIndexIsRebuiltNotTrusted) {
  const auto dir = test::scratch_dir("kb-damaged");
  OrderedJson notes = OrderedJson::array();
  for (int i = 0; i < 3000; ++i) notes.push_back(note("s", "f" + std::to_string(i), "question " + std::to_string(i), "a"));
  write_kb(dir / "kb.json", notes);
  const auto index_path = dir / "kb.sqlite";
  ASSERT_TRUE(open_kb_index(dir / "kb.json", index_path, dir)->rebuilt());
  // Pages in the middle overwritten (a bad disk, a copy cut short): the meta table still says complete.
  const auto size = std::filesystem::file_size(index_path);
  ASSERT_GT(size, 64u * 1024);
  {
    std::fstream f(index_path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size / 2));
    const std::string garbage(8192, '\x5a');
    f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  const auto reopened = open_kb_index(dir / "kb.json", index_path, dir);
  EXPECT_TRUE(reopened->rebuilt());
  EXPECT_EQ(reopened->retrieve("s", "f7", "question 7", 1).at(0).entry.question, "question 7");
}

TEST(Kb, DuplicatesAreCountedAndAKbWithoutNotesIsRefused) {
  const auto dir = test::scratch_dir("kb-duplicates");
  write_kb(dir / "kb.json", OrderedJson::array({note("s", "f", "Is it safe?", "Yes."), note("s", "f", "Is  it safe?", "No."),
                                         note("s", "g", "Is it safe?", "Yes.")}));
  const auto index = open_kb_index(dir / "kb.json", dir / "kb.sqlite", dir);
  EXPECT_EQ(index->duplicates(), 1u);
  EXPECT_EQ(index->exact("s", "f", "Is it safe?")->answer, "Yes.") << "the first note of a key answers";
  write_kb(dir / "empty.json", OrderedJson::array({OrderedJson{{"scene_token", "s"}, {"answer", "no question"}}}));
  try {
    open_kb_index(dir / "empty.json", dir / "empty.sqlite", dir);
    ADD_FAILURE() << "a KB without notes was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("no usable notes"), std::string::npos) << e.what();
  }
}

TEST(Kb, TheDefaultIndexPlaceIsTheSameForEverySpellingOfTheCacheFolder) {
  const auto dir = test::scratch_dir("kb-place");
  write_kb(dir / "kb.json", OrderedJson::array({note("s", "f", "q", "a")}));
  std::set<std::string> places;
  for (const std::string& cache : {(dir / "c" / "models").string(), (dir / "c" / "models").string() + "/",
                                   (dir / "c" / "." / "models" / "").string(), (dir / "c" / "x" / ".." / "models").string()}) {
    std::filesystem::create_directories(dir / "c" / "x");
    const auto r = test::run_process({test::drivevqa_binary(), "kb", "--kb_file", (dir / "kb.json").string(), "--cache_dir", cache});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const size_t at = r.out.find("index ");
    ASSERT_NE(at, std::string::npos) << r.out;
    places.insert(r.out.substr(at, r.out.find_first_of(" \n", at + 6) - at));
  }
  EXPECT_EQ(places.size(), 1u);
  EXPECT_NE(places.begin()->find((dir / "c" / "kb").string()), std::string::npos) << *places.begin();
}

TEST(Kb, SigtermDuringTheIndexBuildLeavesNothingBehind) {
  const auto dir = test::scratch_dir("kb-sigterm");
  OrderedJson notes = OrderedJson::array();
  for (int i = 0; i < 60000; ++i) {
    notes.push_back(note("scene-" + std::to_string(i % 97), "frame-" + std::to_string(i),
                         "What is object number " + std::to_string(i) + " doing near lane " + std::to_string(i % 13) + "?",
                         "Moving " + std::to_string(i)));
  }
  write_kb(dir / "kb.json", notes);
  const std::vector<std::string> argv = {test::drivevqa_binary(), "kb", "--kb_file", (dir / "kb.json").string(),
                                         "--kb_index", (dir / "idx" / "kb.sqlite").string()};
  std::filesystem::create_directory(dir / "idx");
  // The build is under way once its hidden temporary folder exists (it is made after the KB is read);
  // the signal goes then, not after a guessed delay that a loaded machine can outrun.
  const int pid = test::spawn_process(argv);
  const auto building = [&] {
    for (const auto& e : std::filesystem::directory_iterator(dir / "idx")) {
      if (e.path().filename().string().rfind(".", 0) == 0) return true;
    }
    return false;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  while (!building() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_TRUE(building()) << "the index build never started";
  ::kill(pid, SIGTERM);
  EXPECT_EQ(test::wait_process(pid), 130);
  size_t left = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir / "idx")) left += e.path().filename() == "kb.sqlite.lock" ? 0 : 1;
  EXPECT_EQ(left, 0u) << "no index and no temporary folder after a stopped build";
  EXPECT_EQ(test::run_process(argv).exit_code, 0) << "the next run builds it";
}

class KbRun : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir("kb-run");
    items_ = OrderedJson::parse(test::read_text(test::demo_dir() / "questions.json"));
    // Exact notes for the first four demo items; a distractor from another scene.
    OrderedJson notes = OrderedJson::array();
    for (int i = 0; i < 4; ++i) {
      const OrderedJson& it = items_[i];
      notes.push_back(note(it["scene_token"], it["frame_token"], it["question"], "KB answer " + std::to_string(i)));
    }
    notes.push_back(note("other-scene", "other-frame", "What is the moving status of the bus?", "Stopped."));
    write_kb(dir_ / "kb.json", notes);
  }
  test::ProcessResult run(const std::vector<std::string>& extra, const std::string& out, const std::string& model) {
    std::vector<std::string> args = {test::drivevqa_binary(), "run", "--json_file", (test::demo_dir() / "questions.json").string(),
                                     "--image_base_dir", test::demo_dir().string(), "--output_file", (dir_ / out).string(),
                                     "--model_7b", model, "--dtype", "fp16", "--image_max_tokens", "16",
                                     "--max_new_tokens_cap", "3", "-t", "2", "--cache_dir", (dir_ / "cache").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_process(args);
  }
  std::filesystem::path dir_;
  OrderedJson items_;
};

TEST_F(KbRun, OverrideAnswersExactMatchesWithoutAnyModel) {
  // The model folder does not exist: had any item reached a model, the run would have failed.
  const auto r = run({"--limit", "4", "--kb_file", (dir_ / "kb.json").string(), "--rag_mode", "override"}, "o.json",
                     "/nonexistent/model");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("answered from the knowledge base 4"), std::string::npos) << r.err;
  const OrderedJson out = OrderedJson::parse(test::read_text(dir_ / "o.json"));
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(out[i]["answer"], "KB answer " + std::to_string(i));
    EXPECT_EQ(out[i]["model_used"], "kb");
  }
}

TEST_F(KbRun, HintInjectsTheNotesAndOffChangesNothing) {
  // The seed's layout puts the block first in the user turn (the shared layout puts it after the images).
  const auto hint = run({"--limit", "6", "--kb_file", (dir_ / "kb.json").string(), "--rag_mode", "hint", "--kb_topk", "2",
                         "--prompt_layout", "seed", "--dump_prompts", (dir_ / "hint").string()},
                        "hint.json", test::tiny_model_dir().string());
  ASSERT_EQ(hint.exit_code, 0) << hint.err;
  // Item 0 is in the KB with three other notes of its frame; its own note ranks first.
  const std::string p0 = test::read_text(dir_ / "hint" / "000000.txt");
  const std::string expected = "<|im_start|>user\nContext (human-verified notes):\n1. KB answer 0 [scene=" +
                               items_[0]["scene_token"].get<std::string>().substr(0, 8) + ", frame=" +
                               items_[0]["frame_token"].get<std::string>().substr(0, 8) + "]\n2. ";
  EXPECT_NE(p0.find(expected), std::string::npos) << p0;
  EXPECT_NE(p0.find("Use these notes if they are relevant to the question.\n"), std::string::npos);
  EXPECT_LT(p0.find("Use these notes"), p0.find("CAM_FRONT: <__media__>"));
  // Item 4 is not in the KB: it still gets its frame's notes (two of them).
  const std::string p4 = test::read_text(dir_ / "hint" / "000004.txt");
  EXPECT_NE(p4.find("1. KB answer"), std::string::npos);
  EXPECT_NE(p4.find("2. KB answer"), std::string::npos);
  EXPECT_EQ(p4.find("3. "), std::string::npos);

  const auto off = run({"--limit", "6", "--kb_file", (dir_ / "kb.json").string(), "--rag_mode", "off", "--dump_prompts",
                        (dir_ / "off").string()}, "off.json", test::tiny_model_dir().string());
  const auto none = run({"--limit", "6", "--dump_prompts", (dir_ / "none").string(), "--rag_mode", "off"}, "none.json",
                        test::tiny_model_dir().string());
  ASSERT_EQ(off.exit_code, 0) << off.err;
  ASSERT_EQ(none.exit_code, 0) << none.err;
  EXPECT_EQ(test::read_text(dir_ / "off.json"), test::read_text(dir_ / "none.json"));
  EXPECT_EQ(test::read_text(dir_ / "off" / "000000.txt"), test::read_text(dir_ / "none" / "000000.txt"));
  EXPECT_EQ(test::read_text(dir_ / "off" / "000000.txt").find("Context"), std::string::npos);
}

TEST_F(KbRun, MissingKbFileStopsHintAndOverride) {
  for (const char* mode : {"hint", "override"}) {
    const auto r = run({"--kb_file", "/nonexistent/kb.json", "--rag_mode", mode}, "x.json", test::tiny_model_dir().string());
    EXPECT_EQ(r.exit_code, 3) << mode;
    EXPECT_NE(r.err.find("/nonexistent/kb.json: not found"), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace drivevqa
