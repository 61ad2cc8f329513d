// The run journal (results/journal.h) in-process: append, resume, a torn last line, a damaged
// line, another run's key, the lock and paths it must not write through. No drivevqa process runs.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "results/journal.h"
#include "support/test_support.h"
#include "util/error.h"

namespace drivevqa {
namespace {

namespace fs = std::filesystem;

const JournalKey kKey{"input-hash-1", "settings-hash-1"};
const std::string kHeaderLine = R"({"drivevqa_journal":2,"input":"input-hash-1","settings":"settings-hash-1"})";

QuestionItem make_item(size_t index, const std::string& question) {
  QuestionItem item;
  item.index = index;
  item.scene_token = "scene-" + std::to_string(index / 10);
  item.frame_token = "frame-" + std::to_string(index / 5);
  item.question = question;
  return item;
}

ItemResult make_result(const std::string& answer, Subtask subtask = Subtask::kPrediction,
                       ModelSize routed = ModelSize::k7B, size_t tokens = 3) {
  ItemResult r;
  r.subtask = subtask;
  r.routed = routed;
  r.model_used = std::string(model_size_name(routed));
  r.answer = answer;
  r.generated_tokens = tokens;
  return r;
}

TEST(UnitJournal, ANewJournalHoldsOnlyItsHeader) {
  const fs::path path = test::scratch_dir("unit-journal-new") / "out.json.journal";
  Journal journal(path, kKey, false);
  EXPECT_TRUE(journal.entries().empty());
  EXPECT_EQ(journal.path(), path);
  EXPECT_EQ(test::read_text(path), kHeaderLine + "\n");
}

TEST(UnitJournal, AppendedAnswersAreFoundAndSurviveAReopen) {
  const fs::path path = test::scratch_dir("unit-journal-reopen") / "out.json.journal";
  const QuestionItem first = make_item(0, "Is the road clear?");
  const QuestionItem second = make_item(7, "What are the safe actions of the ego vehicle?");
  ItemResult error_answer = make_result(std::string(kErrorAnswerPrefix) + "no image", Subtask::kPlanningSceneDescription,
                                        ModelSize::k72B, 0);
  error_answer.model_used = "none";
  error_answer.is_error = true;
  {
    Journal journal(path, kKey, false);
    journal.append(first, make_result("Yes.", Subtask::kPrediction, ModelSize::k7B, 4));
    journal.append(second, error_answer);
    ASSERT_NE(journal.find(first), nullptr);
    EXPECT_EQ(journal.find(first)->answer, "Yes.");
    EXPECT_EQ(journal.entries().size(), 2u);
  }
  EXPECT_EQ(test::journal_lines(path).size(), 3u);  // header and two answers, each on its own line

  Journal resumed(path, kKey, false);
  ASSERT_EQ(resumed.entries().size(), 2u);
  const ItemResult* a = resumed.find(first);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->answer, "Yes.");
  EXPECT_EQ(a->subtask, Subtask::kPrediction);
  EXPECT_EQ(a->routed, ModelSize::k7B);
  EXPECT_EQ(a->model_used, "7B");
  EXPECT_EQ(a->generated_tokens, 4u);
  EXPECT_FALSE(a->is_error);
  const ItemResult* b = resumed.find(second);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->answer, error_answer.answer);
  EXPECT_EQ(b->subtask, Subtask::kPlanningSceneDescription);
  EXPECT_EQ(b->routed, ModelSize::k72B);
  EXPECT_EQ(b->model_used, "none");
  EXPECT_TRUE(b->is_error);
  EXPECT_EQ(resumed.find(make_item(3, "Is the road clear?")), nullptr) << "index 3 was never answered";
}

// An answer is reused only for the item it names: same index, another scene, frame or question.
TEST(UnitJournal, AnAnswerIsNotReusedForAnotherItemAtItsIndex) {
  const fs::path path = test::scratch_dir("unit-journal-identity") / "out.json.journal";
  const QuestionItem item = make_item(2, "Is the road clear?");
  { Journal(path, kKey, false).append(item, make_result("Yes.")); }
  Journal resumed(path, kKey, false);
  EXPECT_NE(resumed.find(item), nullptr);
  QuestionItem other_question = item;
  other_question.question = "Is the road blocked?";
  QuestionItem other_frame = item;
  other_frame.frame_token = "frame-other";
  QuestionItem other_scene = item;
  other_scene.scene_token = "scene-other";
  EXPECT_EQ(resumed.find(other_question), nullptr);
  EXPECT_EQ(resumed.find(other_frame), nullptr);
  EXPECT_EQ(resumed.find(other_scene), nullptr);
  EXPECT_EQ(resumed.entries().count(2), 1u) << "entries() keeps it whatever item asks";
}

TEST(UnitJournal, ALaterLineForTheSameIndexReplacesTheEarlierOne) {
  const fs::path path = test::scratch_dir("unit-journal-replace") / "out.json.journal";
  const QuestionItem item = make_item(5, "Will <c1,CAM_FRONT,1.0,2.0> turn left?");
  {
    Journal journal(path, kKey, false);
    journal.append(item, make_result("No."));
    journal.append(item, make_result("Yes."));
    EXPECT_EQ(journal.find(item)->answer, "Yes.");
  }
  Journal resumed(path, kKey, false);
  ASSERT_NE(resumed.find(item), nullptr);
  EXPECT_EQ(resumed.find(item)->answer, "Yes.");
  EXPECT_EQ(resumed.entries().size(), 1u);
}

// A kill during a write leaves a last line without its newline: it is dropped (even when the bytes
// that made it are valid JSON) and cut from the file, so the next answer starts a clean line.
TEST(UnitJournal, ATornLastLineIsDroppedAndCutOff) {
  const fs::path path = test::scratch_dir("unit-journal-torn") / "out.json.journal";
  const QuestionItem kept = make_item(0, "Is the road clear?");
  const QuestionItem torn = make_item(1, "Is it raining?");
  {
    Journal journal(path, kKey, false);
    journal.append(kept, make_result("Yes."));
    journal.append(torn, make_result("No, the road is dry."));
  }
  const std::string whole = test::read_text(path);
  const size_t last_line_start = whole.rfind('\n', whole.size() - 2) + 1;
  const std::string trusted = whole.substr(0, last_line_start);

  for (const size_t cut : {size_t{1}, size_t{20}, whole.size() - last_line_start - 1}) {
    SCOPED_TRACE("last line cut to " + std::to_string(cut) + " bytes");
    test::write_bytes(path, whole.substr(0, last_line_start + cut));
    {
      Journal resumed(path, kKey, false);
      EXPECT_NE(resumed.find(kept), nullptr);
      EXPECT_EQ(resumed.find(torn), nullptr);
      EXPECT_EQ(resumed.entries().size(), 1u);
      EXPECT_EQ(test::read_text(path), trusted) << "the torn bytes are trimmed away on open";
      resumed.append(torn, make_result("No."));
    }
    Journal again(path, kKey, false);
    ASSERT_NE(again.find(torn), nullptr) << "the answer written after the trim reads back";
    EXPECT_EQ(again.find(torn)->answer, "No.");
    EXPECT_EQ(again.entries().size(), 2u);
  }
}

// A torn header (a kill while the very first line was written) holds nothing: the journal starts
// afresh, whatever key the torn bytes began to name.
TEST(UnitJournal, ATornHeaderStartsAfresh) {
  const fs::path path = test::scratch_dir("unit-journal-torn-header") / "out.json.journal";
  test::write_bytes(path, kHeaderLine.substr(0, 25));
  Journal journal(path, JournalKey{"other-input", "other-settings"}, false);
  EXPECT_TRUE(journal.entries().empty());
  EXPECT_EQ(test::read_text(path), R"({"drivevqa_journal":2,"input":"other-input","settings":"other-settings"})"
                                   "\n");
}

// A complete line that is not an answer this program wrote ends the trusted prefix: it and every
// line after it are dropped.
TEST(UnitJournal, ADamagedLineEndsTheTrustedPrefix) {
  const fs::path path = test::scratch_dir("unit-journal-damaged") / "out.json.journal";
  const QuestionItem before = make_item(0, "q0"), after = make_item(1, "q1");
  { Journal(path, kKey, false).append(before, make_result("a0")); }
  const std::string trusted = test::read_text(path);
  const std::vector<std::string> damaged_lines = {
      "not json at all",
      R"({"item":"x","answer":"no index"})",
      R"({"index":-1,"item":"x","subtask":"Prediction","model_routed":"7B","model_used":"7B","answer":"a","error":false})",
      R"({"index":1,"item":"x","subtask":"No-Such-Subtask","model_routed":"7B","model_used":"7B","answer":"a","error":false})",
      R"({"index":1,"item":"x","subtask":"Prediction","model_routed":"7B","model_used":"7B","answer":42,"error":false})",
      "[1,2,3]",
  };
  for (const std::string& damaged : damaged_lines) {
    SCOPED_TRACE(damaged);
    test::write_bytes(path, trusted);
    { Journal(path, kKey, false).append(after, make_result("a1")); }
    const std::string good_answer_line = test::read_text(path).substr(trusted.size());
    test::write_bytes(path, trusted + damaged + "\n" + good_answer_line);
    Journal resumed(path, kKey, false);
    EXPECT_NE(resumed.find(before), nullptr);
    EXPECT_EQ(resumed.find(after), nullptr) << "a line after the damaged one is not trusted";
    EXPECT_EQ(resumed.entries().size(), 1u);
    EXPECT_EQ(test::read_text(path), trusted);
  }
}

TEST(UnitJournal, AnotherRunsJournalIsRefusedUnlessOverwritten) {
  const fs::path path = test::scratch_dir("unit-journal-key") / "out.json.journal";
  { Journal(path, kKey, false).append(make_item(0, "q"), make_result("a")); }
  const std::string before = test::read_text(path);
  for (const JournalKey& other : {JournalKey{"input-hash-2", kKey.settings_hash}, JournalKey{kKey.input_hash, "settings-hash-2"}}) {
    try {
      Journal refused(path, other, false);
      ADD_FAILURE() << "a journal of other settings was opened";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("--overwrite"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
    }
    EXPECT_EQ(test::read_text(path), before) << "a refused journal is left as it was";
  }
  const JournalKey other{"input-hash-2", "settings-hash-2"};
  {
    Journal fresh(path, other, true);
    EXPECT_TRUE(fresh.entries().empty());
  }
  EXPECT_EQ(test::read_text(path), R"({"drivevqa_journal":2,"input":"input-hash-2","settings":"settings-hash-2"})"
                                   "\n");
  // With the same key, --overwrite discards the answers too.
  { Journal(path, other, false).append(make_item(0, "q"), make_result("a")); }
  Journal fresh_again(path, other, true);
  EXPECT_TRUE(fresh_again.entries().empty());
}

// A journal without answers (the run failed before answering) has nothing to lose: another key
// simply starts it afresh.
TEST(UnitJournal, AHeaderOnlyJournalOfAnotherKeyStartsAfresh) {
  const fs::path path = test::scratch_dir("unit-journal-header-only") / "out.json.journal";
  { Journal created(path, kKey, false); }
  Journal other(path, JournalKey{"input-hash-2", "settings-hash-2"}, false);
  EXPECT_TRUE(other.entries().empty());
  EXPECT_EQ(test::read_text(path), R"({"drivevqa_journal":2,"input":"input-hash-2","settings":"settings-hash-2"})"
                                   "\n");
}

TEST(UnitJournal, AJournalOfAnotherKeyWhoseOnlyAnswerIsTornStartsAfresh) {
  const fs::path path = test::scratch_dir("unit-journal-torn-only") / "out.json.journal";
  { Journal created(path, kKey, false); }
  {
    std::ofstream torn(path, std::ios::app | std::ios::binary);
    torn << R"({"index":0,"subtask":"perc)";  // killed while writing its first answer
  }
  Journal other(path, JournalKey{"input-hash-2", "settings-hash-2"}, false);
  EXPECT_TRUE(other.entries().empty());
  EXPECT_EQ(test::read_text(path), R"({"drivevqa_journal":2,"input":"input-hash-2","settings":"settings-hash-2"})"
                                   "\n");
}

TEST(UnitJournal, OneJournalIsWrittenByOneRunAtATime) {
  const fs::path path = test::scratch_dir("unit-journal-lock") / "out.json.journal";
  {
    Journal holder(path, kKey, false);
    try {
      Journal second(path, kKey, false);
      ADD_FAILURE() << "a locked journal was opened twice";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("another drivevqa run"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(Journal(path, kKey, false)) << "the lock goes with the Journal that held it";
}

TEST(UnitJournal, NeverWritesThroughALinkOrIntoANonRegularFile) {
  const fs::path dir = test::scratch_dir("unit-journal-paths");
  const fs::path target = dir / "elsewhere.txt";
  test::write_bytes(target, "not a journal\n");
  fs::create_symlink(target, dir / "link.journal");
  EXPECT_THROW(Journal(dir / "link.journal", kKey, true), UsageError);
  EXPECT_EQ(test::read_text(target), "not a journal\n");
  ASSERT_EQ(::mkfifo((dir / "fifo.journal").c_str(), 0644), 0);
  EXPECT_THROW(Journal(dir / "fifo.journal", kKey, true), UsageError);
  fs::create_directory(dir / "folder.journal");
  EXPECT_THROW(Journal(dir / "folder.journal", kKey, true), Error);
}

// Answers are model output: bytes that are not UTF-8 are stored as U+FFFD instead of failing.
TEST(UnitJournal, InvalidUtf8InAnAnswerIsStoredReplaced) {
  const fs::path path = test::scratch_dir("unit-journal-utf8") / "out.json.journal";
  const QuestionItem item = make_item(0, "q");
  { Journal(path, kKey, false).append(item, make_result("caf\xc3")); }
  Journal resumed(path, kKey, false);
  ASSERT_NE(resumed.find(item), nullptr);
  EXPECT_EQ(resumed.find(item)->answer, "caf\xef\xbf\xbd");
}

}  // namespace
}  // namespace drivevqa
