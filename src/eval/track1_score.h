// Scoring paired answers the way Track 1 / DriveBench does (shared/docs/track1.md §6).
//
// Per question: subtask = classify(category, question), shape = answer_shape(subtask, question).
//   kOption: correct when the ground truth and the prediction read as the same letter, under
//            DriveBench's reader (drivebench_letter: the scored one) and, for comparison, under the
//            strict reader (strict_letter). Nothing readable on either side is wrong. "Misread
//            risk": the two readers disagree on the prediction.
//   kYesNo:  correct when the first words (yes/no, any case, punctuation stripped) are equal.
//   kOpen:   per-answer ROUGE-L and METEOR, plus the judge's 0..100 when a judge is used.
// Track 1 phase-2 points per question (0..100): closed (option / yes-no): 100 if correct else 0;
// open: 10 x ROUGE-L + 10 x METEOR + 0.8 x judge.
//
// What must hold: a missing judge score is never taken as 0. An open answer without a judge score
// has no full score; a group's full score exists only when every open answer in it has one. The
// parts that do exist (closed points, the 0.1 R + 0.1 M points) are kept apart and are labelled
// "without judge" by the report.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "eval/ground_truth.h"
#include "eval/judge.h"
#include "eval/language_metrics.h"
#include "prompt/answer_shape.h"
#include "route/route.h"

namespace drivevqa {

class Meteor;

struct QuestionScore {
  size_t ground_truth_index = 0;  // into the ground-truth AnswerFile
  size_t prediction_index = 0;    // into the predictions AnswerFile
  std::string category;           // the ground truth's, else the prediction's ("" when neither has one)
  std::string question, answer, reference;
  Subtask subtask = Subtask::kPerceptionMcq;
  AnswerKind kind = AnswerKind::kOpen;
  // kOption: the letters read ('\0' when unreadable).
  char answer_letter_drivebench = 0, reference_letter_drivebench = 0;
  char answer_letter_strict = 0, reference_letter_strict = 0;
  bool misread_risk = false;
  bool correct = false;           // kOption: under DriveBench's reader; kYesNo: first words equal
  bool correct_strict = false;    // kOption under the strict reader; kYesNo as `correct`
  // kOpen.
  double rouge_l = 0, meteor = 0;
  std::optional<double> judge;    // 0..100

  bool closed() const { return kind != AnswerKind::kOpen; }
  // Points without the judge term: 100/0 for closed answers, 10 R + 10 M for open ones.
  double points_without_judge() const;
  // The full 0..100 points; nullopt for an open answer without a judge score.
  std::optional<double> points() const;
  // Share of the attainable points it got, 0..1 (open without judge: of the 20 lexical points): for ranking.
  double attained() const;
};

// Track 1 points of a group of questions (a subtask, a category, all).
struct Track1Parts {
  size_t questions = 0;
  size_t closed = 0, closed_correct = 0;
  size_t open = 0, judged = 0;
  double lexical_points = 0;   // sum over open answers of 10 R + 10 M
  double judged_lexical_points = 0;  // the same over the judged ones only
  double judge_points = 0;     // sum over judged open answers of 0.8 x judge

  void add(const QuestionScore& q);
  // Mean points per question, only when every open answer has a judge score.
  std::optional<double> score() const;
  // Mean over the questions that have every part (closed + judged open); nullopt when none.
  std::optional<double> score_of_complete() const;
  // Closed points and 0.1 R + 0.1 M points over all questions, the judge term left out.
  double without_judge() const;
  double closed_points_share() const;   // 100 x closed_correct / questions
  double lexical_points_share() const;  // lexical_points / questions
  size_t open_without_judge() const { return open - judged; }
};

struct SubtaskSummary {
  Subtask subtask = Subtask::kPerceptionMcq;
  size_t count = 0;
  size_t option_count = 0, option_correct = 0, option_correct_strict = 0, misread_risk = 0;
  size_t yes_no_count = 0, yes_no_correct = 0;
  size_t open_count = 0, judged = 0;
  double judge_sum = 0;
  CorpusScores language;  // over the open answers (count 0: none)
  Track1Parts track1;

  size_t closed_count() const { return option_count + yes_no_count; }
  // Accuracy over the closed answers (options by DriveBench's reader or the strict one, yes/no by
  // the first word), 0..1; nullopt without closed answers.
  std::optional<double> accuracy() const;
  std::optional<double> accuracy_strict() const;
  std::optional<double> judge_mean() const;
};

struct Evaluation {
  std::vector<QuestionScore> questions;            // in ground-truth order
  std::vector<SubtaskSummary> subtasks;            // the subtasks present, in all_subtasks() order
  std::vector<std::pair<std::string, Track1Parts>> categories;  // perception, prediction, planning, corruption, behavior, then others
  Track1Parts overall;
  size_t misread_risk = 0;
  size_t error_answers = 0;                        // predictions that are drivevqa error answers
  bool judge_used = false;
  JudgeStats judge_stats;
};

// "yes" / "no" from an answer's first word (any case, punctuation stripped); "" otherwise.
std::string yes_no_word(std::string_view answer);

// One question's parts except the judge. `meteor` may be null (METEOR 0).
QuestionScore score_question(const EvalItem& reference, const EvalItem& prediction, const Meteor* meteor);

// The rubric an open answer of this subtask is judged by.
JudgeRubric rubric_for(Subtask subtask);

// Scores every pair; calls the judge on the open answers when `judge` is given (judge_all's
// exceptions pass through). Subtask language metrics come from score_corpus over their open answers.
Evaluation evaluate(const AnswerFile& ground_truth, const AnswerFile& predictions, const Pairing& pairing,
                    const Meteor* meteor, const JudgeOptions* judge);

// Fills subtasks, categories, overall and the counters from `questions` (evaluate() calls it).
void summarize(Evaluation& evaluation, const Meteor* meteor);

}  // namespace drivevqa
