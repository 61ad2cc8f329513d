// The knowledge base: reading, the SQLite FTS5 index (reuse, rebuild), retrieval order, and the
// off / hint / override modes of `drivevqa run`.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "kb/kb_index.h"
#include "support/test_support.h"
#include "util/error.h"

namespace drivevqa {
namespace {

using Json = nlohmann::ordered_json;

void write_kb(const std::filesystem::path& path, const Json& annotations) {
  std::ofstream(path) << Json{{"annotations", annotations}}.dump(1);
}

Json note(const std::string& scene, const std::string& frame, const std::string& q, const std::string& a) {
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
  const auto index = KbIndex::open(dir / "kb.json", "", dir / "cache");
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
  write_kb(dir / "kb.json", Json::array({note("s", "f", "q one", "a1")}));
  const auto index_path = dir / "kb.sqlite";
  EXPECT_TRUE(KbIndex::open(dir / "kb.json", index_path, dir)->rebuilt());
  EXPECT_FALSE(KbIndex::open(dir / "kb.json", index_path, dir)->rebuilt());
  write_kb(dir / "kb.json", Json::array({note("s", "f", "q one", "a1"), note("s", "f", "q two", "a2")}));
  const auto changed = KbIndex::open(dir / "kb.json", index_path, dir);
  EXPECT_TRUE(changed->rebuilt());
  EXPECT_EQ(changed->entries(), 2u);
  // A file at the index path that is not a complete index (a killed build, anything else) is rebuilt.
  std::ofstream(index_path, std::ios::trunc) << "SQLite format 3 but cut short";
  EXPECT_TRUE(KbIndex::open(dir / "kb.json", index_path, dir)->rebuilt());
}

class KbRun : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir("kb-run");
    items_ = Json::parse(test::read_text(test::demo_dir() / "questions.json"));
    // Exact notes for the first four demo items; a distractor from another scene.
    Json notes = Json::array();
    for (int i = 0; i < 4; ++i) {
      const Json& it = items_[i];
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
  Json items_;
};

TEST_F(KbRun, OverrideAnswersExactMatchesWithoutAnyModel) {
  // The model folder does not exist: had any item reached a model, the run would have failed.
  const auto r = run({"--limit", "4", "--kb_file", (dir_ / "kb.json").string(), "--rag_mode", "override"}, "o.json",
                     "/nonexistent/model");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("answered from the knowledge base 4"), std::string::npos) << r.err;
  const Json out = Json::parse(test::read_text(dir_ / "o.json"));
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
