// Language metrics, the MCQ letter readers, the COCO tokeniser and METEOR: pycocoevalcap's own
// example, and small cases whose values follow from the metrics' definitions.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "eval/language_metrics.h"
#include "eval/mcq_reader.h"
#include "eval/meteor.h"
#include "eval/text_tokens.h"
#include "util/error.h"

namespace drivevqa {
namespace {

using Tokens = std::vector<std::string>;

// pycocoevalcap's example (its README / test): two answers, one reference each.
const std::vector<std::string> kExamplePredictions{"i am a boy", "she is a girl"};
const std::vector<std::string> kExampleReferences{"am i a boy ?", "is she a girl ?"};

// ---- Tokeniser

TEST(CocoTokens, SplitsCliticsAndDropsPunctuation) {
  EXPECT_EQ(coco_tokens("Don't stop; it's the car's turn (left)."),
            (Tokens{"do", "n't", "stop", "it", "'s", "the", "car", "'s", "turn", "left"}));
  EXPECT_EQ(coco_tokens("They're here, we'll see: I'm sure I'd go -- can't won't!"),
            (Tokens{"they", "'re", "here", "we", "'ll", "see", "i", "'m", "sure", "i", "'d", "go", "ca", "n't", "wo",
                    "n't"}));
  EXPECT_EQ(coco_tokens("am i a boy ?"), (Tokens{"am", "i", "a", "boy"}));
  EXPECT_EQ(coco_tokens("It\u2019s \u201Cfine\u201D \u2014 really\u2026"), (Tokens{"it", "'s", "fine", "really"}));
}

TEST(CocoTokens, KeepsNumbersHyphenatedWordsAndObjectTags) {
  EXPECT_EQ(coco_tokens("<c1,CAM_FRONT,1088.3,497.5> is 1,000 m away, e.g. at 12:30..."),
            (Tokens{"<", "c1", "cam_front", "1088.3", "497.5", ">", "is", "1,000", "m", "away", "e.g.", "at", "12:30"}));
  EXPECT_EQ(coco_tokens("A left-turn at 5.5 m/s."), (Tokens{"a", "left-turn", "at", "5.5", "m", "/", "s"}));
}

TEST(CocoTokens, NeverEmitsPunctuationOrEmptyTokens) {
  const std::vector<std::string> punctuation{"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".",
                                             "?",  "!", ",",  ":", "-",     "--",    "...",   ";"};
  for (const std::string text : {"(a) [b] {c} 'd' \"e\" `f` g... h -- i - j; k: l, m! n?", "''''", "...,;:!?", "-",
                                 "' 's '' `` x'"}) {
    const Tokens tokens = coco_tokens(text);
    for (const auto& token : tokens) {
      EXPECT_FALSE(token.empty()) << text;
      EXPECT_EQ(std::find(punctuation.begin(), punctuation.end(), token), punctuation.end()) << text << " -> " << token;
    }
    EXPECT_EQ(coco_tokens(text), tokens);
  }
  EXPECT_EQ(coco_tokens("(a) [b] {c} 'dog' \"e\""), (Tokens{"a", "b", "c", "dog", "e"}));
  EXPECT_TRUE(coco_tokens(" .,;:!? ").empty());
}

// ---- MCQ readers

TEST(McqReaderDriveBench, ReadsTheFirstLetterPatternAnywhere) {
  // The article "a" in the explanation makes DriveBench's reader answer A.
  EXPECT_EQ(drivebench_letter("C. Going ahead. The object is moving at a constant speed."), 'A');
  EXPECT_EQ(drivebench_letter("E"), std::nullopt);
  EXPECT_EQ(drivebench_letter("B"), 'B');
  EXPECT_EQ(drivebench_letter("option c"), 'C');
  EXPECT_EQ(drivebench_letter("  The answer is D.  "), 'D');
  EXPECT_EQ(drivebench_letter("abc bad cab"), std::nullopt);  // letters inside words are not words
  EXPECT_EQ(drivebench_letter("x_b"), std::nullopt);          // '_' is a word character, as in Python
  EXPECT_EQ(drivebench_letter(""), std::nullopt);
  EXPECT_EQ(drivebench_letter(std::string(100000, 'x') + " d"), 'D');  // long answers: no regex recursion
}

TEST(McqReaderStrict, ReadsOnlyTheLeadingLetter) {
  EXPECT_EQ(strict_letter("C. Going ahead. The object is moving at a constant speed."), 'C');
  EXPECT_EQ(strict_letter("E"), 'E');
  EXPECT_EQ(strict_letter("B"), 'B');
  EXPECT_EQ(strict_letter("option c"), 'C');
  EXPECT_EQ(strict_letter("  Answer: d) keep going"), 'D');
  EXPECT_EQ(strict_letter("b, because"), 'B');
  EXPECT_EQ(strict_letter("F"), std::nullopt);
  EXPECT_EQ(strict_letter("Cars ahead"), std::nullopt);
  EXPECT_EQ(strict_letter("The answer is B"), std::nullopt);
  EXPECT_EQ(strict_letter(""), std::nullopt);
}

// ---- BLEU, ROUGE-L, CIDEr-D

TEST(EvalMetrics, PycocoevalcapExample) {
  const CorpusScores s = score_corpus(kExamplePredictions, kExampleReferences, nullptr);
  EXPECT_EQ(s.count, 2u);
  EXPECT_NEAR(s.bleu[0], 1.0, 1e-3);
  EXPECT_NEAR(s.bleu[1], 0.57735, 1e-3);
  EXPECT_NEAR(s.bleu[2] / 4.37e-6, 1.0, 0.02);  // tiny values: compared relatively
  EXPECT_NEAR(s.bleu[3] / 1.43e-8, 1.0, 0.02);
  EXPECT_NEAR(s.rouge_l, 0.75, 1e-3);
  EXPECT_NEAR(s.cider, 3.333, 1e-3);
  EXPECT_EQ(s.meteor, 0);  // no Meteor given
}

TEST(EvalMetrics, IdenticalAnswersScorePerfectly) {
  const std::vector<std::string> answers{"the ego vehicle keeps its lane", "a pedestrian crosses in front of us"};
  const CorpusScores s = score_corpus(answers, answers, nullptr);
  for (const double bleu : s.bleu) EXPECT_NEAR(bleu, 1.0, 1e-6);
  EXPECT_NEAR(s.rouge_l, 1.0, 1e-12);
  EXPECT_NEAR(s.cider, 10.0, 1e-9);  // every n-gram occurs in one reference of two: all weights log 2
}

TEST(EvalMetrics, BleuBrevityPenaltyAndRougeOfOneAnswer) {
  // "the car" against "the car is red": unigram precision 1, brevity penalty exp(1 - 4/2).
  const CorpusScores s = score_corpus(std::vector<std::string>{"the car"}, std::vector<std::string>{"the car is red"}, nullptr);
  EXPECT_NEAR(s.bleu[0], std::exp(-1.0), 1e-6);
  // ROUGE-L: LCS 2, precision 1, recall 1/2, beta 1.2.
  const double expected = (1 + 1.44) * 1.0 * 0.5 / (0.5 + 1.44 * 1.0);
  EXPECT_NEAR(s.rouge_l, expected, 1e-12);
  EXPECT_NEAR(rouge_l("The car.", "the car is red"), expected, 1e-12);
  EXPECT_NEAR(rouge_l("i am a boy", "am i a boy ?"), 0.75, 1e-12);
}

TEST(EvalMetrics, EmptyAnswersScoreZeroWithoutFailing) {
  EXPECT_EQ(rouge_l("", "the car"), 0);
  EXPECT_EQ(rouge_l("the car", "?"), 0);
  const CorpusScores s =
      score_corpus(std::vector<std::string>{"", "stop"}, std::vector<std::string>{"the car stops", ""}, nullptr);
  EXPECT_EQ(s.count, 2u);
  for (const double bleu : s.bleu) EXPECT_TRUE(std::isfinite(bleu) && bleu >= 0 && bleu < 1e-3);
  EXPECT_EQ(s.rouge_l, 0);
  EXPECT_EQ(s.cider, 0);
  const CorpusScores none = score_corpus({}, {}, nullptr);
  EXPECT_EQ(none.count, 0u);
  EXPECT_EQ(none.cider, 0);
  EXPECT_THROW(score_corpus(std::vector<std::string>{"a"}, {}, nullptr), Error);
}

// ---- METEOR

long resident_kib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

// METEOR 1.5 from its inputs, for expected values: weighted precision and recall, the chunks and
// the matched words (the same on both sides), and whether every word of both sides is matched.
double meteor_from(double precision, double recall, double chunks, double matches, bool all_matched) {
  const double fmean = precision * recall / (0.85 * precision + 0.15 * recall);
  const double fragmentation = all_matched && chunks == 1 ? 0 : chunks / matches;
  return fmean * (1 - 0.6 * std::pow(fragmentation, 0.2));
}

class MeteorScore : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const long before = resident_kib();
    const auto start = std::chrono::steady_clock::now();
    meteor_ = Meteor::load();
    load_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("WordNet load: %.3f s, resident memory +%.1f MiB\n", load_seconds_, (resident_kib() - before) / 1024.0);
  }
  static void TearDownTestSuite() { meteor_.reset(); }

  static inline std::unique_ptr<Meteor> meteor_;
  static inline double load_seconds_ = 0;
};

TEST_F(MeteorScore, PycocoevalcapExampleBesideTheJar) {
  const double value = meteor_->corpus(kExamplePredictions, kExampleReferences);
  std::printf("METEOR on pycocoevalcap's example: %.4f (the 1.5 jar: 0.4335)\n", value);
  // Every word matches exactly here, so function words, stems and synonyms play no part: P = R = 1
  // and only the fragmentation penalty remains (3 chunks per 4 matches in each pair), so a correct
  // implementation gives the jar's number itself: 1 - 0.6 * 0.75^0.2 = 0.43355.
  EXPECT_NEAR(value, 0.4335, 1e-3);
  EXPECT_NEAR(score_corpus(kExamplePredictions, kExampleReferences, meteor_.get()).meteor, value, 1e-12);
}

TEST_F(MeteorScore, IdenticalIsOneAndUnrelatedIsZero) {
  EXPECT_NEAR(meteor_->segment("The car stops at the red light.", "the car stops at the red light"), 1.0, 1e-12);
  EXPECT_EQ(meteor_->segment("red", "blue"), 0);
  EXPECT_EQ(meteor_->segment("", "the car"), 0);
  EXPECT_EQ(meteor_->segment("", ""), 0);
}

TEST_F(MeteorScore, SynonymsScoreBetweenExactAndMismatch) {
  const double synonym = meteor_->segment("the car is quick", "the car is fast");
  const double mismatch = meteor_->segment("the car is quick", "the car is blue");
  EXPECT_GT(synonym, mismatch);
  EXPECT_LT(synonym, 1.0);
  // "the" and "is" are function words (weight 0.25), "car" and "quick" content words (0.75);
  // quick~fast is a synonym match (0.8): P = R = (0.25 * 2 + 0.75 * (1 + 0.8)) / 2 = 0.925, one chunk.
  EXPECT_NEAR(synonym, 0.925, 1e-9);
}

TEST_F(MeteorScore, StemsAndBaseFormsMatchAtTheirWeights) {
  EXPECT_NEAR(meteor_->segment("cars", "car"), 0.6, 1e-9);        // Snowball stem "car"
  EXPECT_NEAR(meteor_->segment("running", "run"), 0.6, 1e-9);     // stem "run"
  EXPECT_NEAR(meteor_->segment("mice", "mouse"), 0.8, 1e-9);      // noun.exc: mice -> mouse
  EXPECT_NEAR(meteor_->segment("is", "are"), 0.8, 1e-9);          // verb.exc: both -> be
  EXPECT_NEAR(meteor_->segment("stopping", "stopped"), 0.6, 1e-9);
}

TEST_F(MeteorScore, FewestChunksAmongTheMostMatches) {
  // Taking "the car" at the start also gives 3 matches, but in 2 chunks; the best alignment takes
  // the last three words in 1 chunk. Test: 5 words, 2 of them function words; reference: 3, 1.
  const double precision = (0.25 + 0.75 * 2) / (0.75 * 3 + 0.25 * 2);
  const double recall = 1.0;
  EXPECT_NEAR(meteor_->segment("the car the car stops", "the car stops"), meteor_from(precision, recall, 1, 3, false),
              1e-9);
}

TEST_F(MeteorScore, CorpusSumsStatisticsRatherThanAveragingScores) {
  // Alone: 1 and 0. Together: P = R = 0.75 / 1.5, one chunk over one match, not all matched.
  const std::vector<std::string> predictions{"car", "red"}, references{"car", "blue"};
  EXPECT_NEAR(meteor_->corpus(predictions, references), meteor_from(0.5, 0.5, 1, 1, false), 1e-9);
  EXPECT_EQ(meteor_->corpus({}, {}), 0);
  EXPECT_THROW(meteor_->corpus(predictions, {}), Error);
}

TEST_F(MeteorScore, SameScoresFromSeveralThreads) {
  const std::vector<std::pair<std::string, std::string>> pairs{
      {"the vehicle is stopping", "the car is stopped"}, {"cars ahead are quick", "the car ahead is fast"},
      {"a pedestrian crosses", "pedestrians are crossing the road"}};
  std::vector<double> expected;
  for (const auto& [p, r] : pairs) expected.push_back(meteor_->segment(p, r));
  std::vector<std::vector<double>> got(4);
  std::vector<std::thread> threads;
  for (auto& scores : got) {
    threads.emplace_back([&] {
      for (int round = 0; round < 50; ++round) {
        for (const auto& [p, r] : pairs) scores.push_back(meteor_->segment(p, r));
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& scores : got) {
    for (size_t i = 0; i < scores.size(); ++i) EXPECT_EQ(scores[i], expected[i % pairs.size()]);
  }
}

TEST_F(MeteorScore, LoadsQuickly) {
  // About 0.15 s on an idle machine; the bound leaves room for a loaded one.
  EXPECT_LT(load_seconds_, 10.0);
}

TEST(MeteorLoad, MissingFolderIsAnInputErrorNamingIt) {
  try {
    Meteor::load("/nonexistent/wordnet");
    FAIL() << "no InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/wordnet"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace drivevqa
