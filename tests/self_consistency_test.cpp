// Self-consistency (--self_consistency N): samples forked from one evaluated suffix, a vote over
// what the scorer reads (ties to the main answer), minimum Bayes risk for open answers, and answers
// that do not depend on --parallel.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>

#include "engine/parallel_decode.h"
#include "support/test_support.h"
#include "util/error.h"
#include "util/files.h"
#include "vote/self_consistency.h"

namespace drivevqa {
namespace {

namespace fs = std::filesystem;

TEST(UnitVote, TheMajorityOfTheReadLettersWinsAndTheMainAnswerIsKeptWhenItAgrees) {
  const std::vector<std::string> samples = {"B", "A", "b. Going ahead.", "B", "nothing to read"};
  const Vote v = vote_closed(AnswerKind::kOption, "A", samples);
  EXPECT_EQ(v.answer, "B");
  EXPECT_TRUE(v.overrides);
  EXPECT_FALSE(v.tie);
  ASSERT_EQ(v.counts.size(), 2u);
  EXPECT_EQ(v.counts[0], (std::pair<std::string, size_t>{"B", 3}));
  EXPECT_EQ(v.reads, (std::vector<std::string>{"B", "A", "B", "B", ""}));
  const Vote agrees = vote_closed(AnswerKind::kOption, "B. The car.", samples);
  EXPECT_EQ(agrees.answer, "B. The car.") << "the main answer's text is kept when it reads as the winner";
  EXPECT_FALSE(agrees.overrides);
}

TEST(UnitVote, ATieOrNothingReadKeepsTheMainAnswer) {
  const std::vector<std::string> tie = {"A", "C", "C", "A"};
  const Vote v = vote_closed(AnswerKind::kOption, "D", tie);
  EXPECT_TRUE(v.tie);
  EXPECT_EQ(v.answer, "D");
  EXPECT_FALSE(v.overrides);
  const std::vector<std::string> unread = {"maybe", "?"};
  EXPECT_EQ(vote_closed(AnswerKind::kOption, "C", unread).answer, "C");
  EXPECT_TRUE(vote_closed(AnswerKind::kOption, "C", unread).tie);
  EXPECT_EQ(vote_closed(AnswerKind::kOption, "C", {}).answer, "C");
}

TEST(UnitVote, YesNoVotesOnTheFirstWord) {
  const std::vector<std::string> samples = {"No. It is parked.", "Yes.", "no, it waits", "Perhaps."};
  const Vote v = vote_closed(AnswerKind::kYesNo, "Yes. It moves.", samples);
  EXPECT_EQ(v.answer, "No. It is parked.");
  EXPECT_EQ(v.main_read, "yes");
  const auto j = nlohmann::json::parse(vote_json(v, AnswerKind::kYesNo));
  EXPECT_EQ(j["method"], "majority");
  EXPECT_EQ(j["counts"]["no"], 2);
  EXPECT_EQ(j["samples"].size(), 4u);
}

TEST(UnitVote, MinimumBayesRiskPicksTheSampleClosestToTheOthers) {
  const std::vector<std::string> samples = {"a red bus turns left", "the car waits", "the car waits at the light",
                                            "the car waits at the light", "two dogs"};
  const Vote v = pick_by_mbr(samples);
  EXPECT_EQ(v.chosen, 2u) << "two equal samples agree most; the lower index wins the tie";
  EXPECT_EQ(v.answer, samples[2]);
  ASSERT_EQ(v.agreement.size(), 5u);
  EXPECT_LT(v.agreement[1], v.agreement[2]);
  EXPECT_LT(v.agreement[0], v.agreement[1]);
  EXPECT_DOUBLE_EQ(v.agreement[4], 0.0);
  EXPECT_EQ(pick_by_mbr(std::vector<std::string>{"alone"}).answer, "alone");
  EXPECT_THROW(pick_by_mbr({}), ModelError);
  EXPECT_EQ(nlohmann::json::parse(vote_json(v, AnswerKind::kOpen))["chosen"], 2);
}

// The real engine: a question's answers forked from one evaluated suffix, each forced by its own
// grammar, so that the vote's input is known.
class ForkedAnswers : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { model_ = test::load_tiny_model().release(); }
  static void TearDownTestSuite() { delete model_; }

  struct Decoded {
    std::vector<std::string> texts;
    std::vector<std::vector<llama_token>> tokens;
    ParallelDecodeStats stats;
  };
  // One question whose answers have these grammars ("": free greedy), decoded as one group.
  Decoded decode_group(const std::vector<std::string>& grammars, int budget) {
    const EncodedPrompt prefix = encode(*model_, tokenize(*model_, "<|im_start|>system\nYou drive.<|im_end|>\n", {}));
    const EncodedPrompt suffix =
        encode(*model_, tokenize(*model_, "<|im_start|>user\nWhich option?<|im_end|>\n<|im_start|>assistant\n", {}, false));
    SessionOptions options;
    options.n_ctx = 512;
    options.n_seq_max = 8;
    Session session(*model_, options);
    const llama_pos prefix_end = session.evaluate(prefix, 0, 0, false);
    std::vector<QuestionRequest> requests;
    for (size_t k = 0; k < grammars.size(); ++k) {
      GenerationParams p;
      p.max_new_tokens = budget;
      p.grammar = grammars[k];
      requests.push_back({&suffix, p, k > 0});
    }
    Decoded d;
    d.texts.resize(grammars.size());
    d.tokens.resize(grammars.size());
    decode_parallel(session, prefix_end, prefix.prompt.token_count(), requests, 7, [&](size_t i, Generation g) {
      d.texts[i] = g.text;
      d.tokens[i] = g.tokens;
    }, &d.stats);
    suffix_tokens_ = suffix.prompt.token_count();
    return d;
  }

  static Model* model_;
  size_t suffix_tokens_ = 0;
};
Model* ForkedAnswers::model_ = nullptr;

TEST_F(ForkedAnswers, ForcedSamplesGiveTheVoteTheMajorityAndTheSuffixIsEvaluatedOnce) {
  const std::string a = R"(root ::= "A")", b = R"(root ::= "B")", c = R"(root ::= "C")";
  const Decoded d = decode_group({b, a, a, a, b, c}, 4);
  EXPECT_EQ(d.texts, (std::vector<std::string>{"B", "A", "A", "A", "B", "C"}));
  EXPECT_EQ(d.stats.forked_answers, 5u);
  EXPECT_EQ(d.stats.suffix_tokens, suffix_tokens_) << "the forks share the first answer's evaluated suffix";
  const std::vector<std::string> samples(d.texts.begin() + 1, d.texts.end());
  const Vote v = vote_closed(AnswerKind::kOption, d.texts[0], samples);
  EXPECT_EQ(v.answer, "A");
  EXPECT_TRUE(v.overrides);

  const Decoded tie = decode_group({c, a, b, b, a}, 4);
  const std::vector<std::string> tied(tie.texts.begin() + 1, tie.texts.end());
  const Vote t = vote_closed(AnswerKind::kOption, tie.texts[0], tied);
  EXPECT_TRUE(t.tie);
  EXPECT_EQ(t.answer, "C") << "a tie goes to the main (greedy) answer";
}

TEST_F(ForkedAnswers, AForkPicksItsFirstTokenFromTheSameLogitsAsTheQuestion) {
  const Decoded d = decode_group({"", "", ""}, 1);
  ASSERT_EQ(d.tokens[0].size(), 1u);
  EXPECT_EQ(d.tokens[1], d.tokens[0]);
  EXPECT_EQ(d.tokens[2], d.tokens[0]);
}

TEST_F(ForkedAnswers, AGroupLargerThanTheSequencesOrAForkWithoutAQuestionIsRefused) {
  const EncodedPrompt suffix = encode(*model_, tokenize(*model_, "<|im_start|>user\nHi<|im_end|>\n", {}));
  SessionOptions options;
  options.n_ctx = 256;
  options.n_seq_max = 4;
  Session session(*model_, options);
  GenerationParams p;
  p.max_new_tokens = 2;
  const std::vector<QuestionRequest> group = {{&suffix, p, false}, {&suffix, p, true}, {&suffix, p, true}};
  EXPECT_THROW(decode_parallel(session, 0, 0, group, 2, [](size_t, Generation) {}), ModelError);
  const std::vector<QuestionRequest> orphan = {{&suffix, p, true}};
  EXPECT_THROW(decode_parallel(session, 0, 0, orphan, 2, [](size_t, Generation) {}), ModelError);
}

// The demo, end to end.
struct ScRun {
  std::string results;
  std::vector<nlohmann::json> journal;
  nlohmann::json stats;
};

ScRun run_voting_demo(const std::string& name, std::vector<std::string> extra) {
  const fs::path dir = test::scratch_dir(name);
  std::vector<std::string> argv = {test::drivevqa_binary(), "run", "--json_file", (test::demo_dir() / "questions.json").string(),
                                   "--image_base_dir", test::demo_dir().string(), "--output_file", (dir / "out.json").string(),
                                   "--model_7b", test::tiny_model_dir().string(), "--dtype", "fp16",
                                   "--max_new_tokens_cap", "3", "-t", "2", "--image_max_tokens", "16", "--stats_json",
                                   (dir / "stats.json").string()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  const auto r = test::run_process(argv);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ScRun run{test::read_text(dir / "out.json"), {}, nlohmann::json::parse(test::read_text(dir / "stats.json"))};
  for (const std::string& line : test::journal_lines(dir / "out.json.journal")) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("answer")) run.journal.push_back(j);
  }
  return run;
}

TEST(SelfConsistency, OnTheDemoTheVotesAreJournaledAndTheAnswersDoNotDependOnParallel) {
  const ScRun one = run_voting_demo("sc-parallel-1", {"--self_consistency", "3", "--seed", "7", "--parallel", "1"});
  const ScRun all = run_voting_demo("sc-parallel-all", {"--self_consistency", "3", "--seed", "7"});
  EXPECT_EQ(one.results, all.results);
  size_t voted = 0, closed = 0, open = 0;
  for (const auto& j : all.journal) {
    if (j["error"].get<bool>() || j["model_used"] == "kb") continue;
    ASSERT_TRUE(j.contains("votes")) << j.dump();
    ++voted;
    if (j["votes"]["method"] == "mbr") {
      ++open;
      EXPECT_EQ(j["votes"]["agreement"].size(), 3u);
    } else {
      ++closed;
      EXPECT_EQ(j["votes"]["samples"].size(), 3u);
    }
  }
  EXPECT_GT(closed, 0u);
  EXPECT_GT(open, 0u);
  EXPECT_EQ(all.stats["voted_questions"].get<size_t>(), voted);
  // Closed: the main answer and 3 samples (3 forks); open: 3 samples (2 forks).
  EXPECT_EQ(all.stats["forked_answers"].get<size_t>(), 3 * closed + 2 * open);
  EXPECT_EQ(all.stats["prefix_evaluations"], all.stats["frames"]) << "samples do not cost a prefix of their own";
}

TEST(SelfConsistency, ARunResumedFromItsJournalGivesTheUninterruptedAnswers) {
  const fs::path dir = test::scratch_dir("sc-resume");
  std::vector<std::string> argv = {test::drivevqa_binary(), "run", "--json_file", (test::demo_dir() / "questions.json").string(),
                                   "--image_base_dir", test::demo_dir().string(), "--output_file", (dir / "out.json").string(),
                                   "--model_7b", test::tiny_model_dir().string(), "--dtype", "fp16", "--max_new_tokens_cap", "3",
                                   "-t", "2", "--image_max_tokens", "16", "--self_consistency", "3", "--seed", "7"};
  std::vector<std::string> partial = argv;
  partial.insert(partial.end(), {"--limit", "9"});  // stops inside the first frame
  ASSERT_EQ(test::run_process(partial).exit_code, 0);
  const auto resumed = test::run_process(argv);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const ScRun whole = run_voting_demo("sc-resume-whole", {"--self_consistency", "3", "--seed", "7"});
  EXPECT_EQ(test::read_text(dir / "out.json"), whole.results);
}

TEST(SelfConsistency, ThePromptsFileTurnsItOnPerSubtask) {
  const fs::path dir = test::scratch_dir("sc-prompts");
  std::ofstream(dir / "prompts.json") << R"({"self_consistency": {"Perception-MCQs": 3}})";
  const ScRun run = run_voting_demo("sc-prompts-run", {"--prompts", (dir / "prompts.json").string()});
  size_t voted = 0;
  for (const auto& j : run.journal) {
    EXPECT_EQ(j.contains("votes"), j["subtask"] == "Perception-MCQs" && !j["error"].get<bool>()) << j.dump();
    voted += j.contains("votes");
  }
  EXPECT_GT(voted, 0u);
}

TEST(SelfConsistency, AskVotesOverTheMainAnswerAndItsSamples) {
  const std::string image = test::first_frame_images().front().string();
  const auto r = test::run_process({test::drivevqa_binary(), "ask", "--model", test::tiny_model_dir().string(), "--images",
                                    image, "--image_max_tokens", "16", "-t", "2", "--self_consistency", "3", "--seed", "5",
                                    "What is the car doing? A. Going ahead. B. Turning left. C. Stopped."});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("self-consistency over 4 answers"), std::string::npos) << r.err;
  const size_t votes = r.err.find("{\"method\":");
  ASSERT_NE(votes, std::string::npos) << r.err;
  const auto j = nlohmann::json::parse(r.err.substr(votes, r.err.find('\n', votes) - votes));
  EXPECT_EQ(j["samples"].size(), 3u);
  const std::string answer = r.out.substr(0, r.out.find('\n'));
  ASSERT_EQ(answer.size(), 1u) << r.out;
  EXPECT_NE(std::string("ABC").find(answer), std::string::npos) << r.out;
  if (j["method"] == "majority") {
    std::string winner;
    for (const auto& [value, n] : j["counts"].items()) {
      if (winner.empty() || n.get<int>() > j["counts"][winner].get<int>()) winner = value;
    }
    EXPECT_EQ(answer, winner) << r.err;
  }
}

}  // namespace
}  // namespace drivevqa
