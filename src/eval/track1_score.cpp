#include "eval/track1_score.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "eval/mcq_reader.h"
#include "eval/meteor.h"

namespace drivevqa {
namespace {

constexpr std::string_view kErrorAnswerPrefix = "[drivevqa error] ";
constexpr std::array<std::string_view, 5> kCategoryOrder = {"perception", "prediction", "planning", "corruption",
                                                           "behavior"};

char letter_or_nul(std::optional<char> letter) { return letter ? *letter : '\0'; }

void score_option(QuestionScore& q) {
  q.answer_letter_drivebench = letter_or_nul(drivebench_letter(q.answer));
  q.reference_letter_drivebench = letter_or_nul(drivebench_letter(q.reference));
  q.answer_letter_strict = letter_or_nul(strict_letter(q.answer));
  q.reference_letter_strict = letter_or_nul(strict_letter(q.reference));
  // Unreadable on both sides is not agreement: it is wrong.
  q.correct = q.answer_letter_drivebench != 0 && q.answer_letter_drivebench == q.reference_letter_drivebench;
  q.correct_strict = q.answer_letter_strict != 0 && q.answer_letter_strict == q.reference_letter_strict;
  q.misread_risk = q.answer_letter_drivebench != q.answer_letter_strict;
}

}  // namespace

double QuestionScore::points_without_judge() const {
  return closed() ? (correct ? 100.0 : 0.0) : 10.0 * rouge_l + 10.0 * meteor;
}

std::optional<double> QuestionScore::points() const {
  if (closed()) return points_without_judge();
  if (!judge) return std::nullopt;
  return points_without_judge() + 0.8 * *judge;
}

double QuestionScore::attained() const {
  if (const auto p = points()) return *p / 100.0;
  return points_without_judge() / 20.0;
}

void Track1Parts::add(const QuestionScore& q) {
  ++questions;
  if (q.closed()) {
    ++closed;
    closed_correct += q.correct ? 1 : 0;
    return;
  }
  ++open;
  lexical_points += q.points_without_judge();
  if (q.judge) {
    ++judged;
    judged_lexical_points += q.points_without_judge();
    judge_points += 0.8 * *q.judge;
  }
}

std::optional<double> Track1Parts::score() const {
  if (questions == 0 || judged != open) return std::nullopt;
  return (100.0 * closed_correct + lexical_points + judge_points) / questions;
}

std::optional<double> Track1Parts::score_of_complete() const {
  const size_t complete = closed + judged;
  if (complete == 0) return std::nullopt;
  return (100.0 * closed_correct + judged_lexical_points + judge_points) / complete;
}

double Track1Parts::without_judge() const { return closed_points_share() + lexical_points_share(); }
double Track1Parts::closed_points_share() const { return questions ? 100.0 * closed_correct / questions : 0.0; }
double Track1Parts::lexical_points_share() const { return questions ? lexical_points / questions : 0.0; }

std::optional<double> SubtaskSummary::accuracy() const {
  if (closed_count() == 0) return std::nullopt;
  return static_cast<double>(option_correct + yes_no_correct) / closed_count();
}

std::optional<double> SubtaskSummary::accuracy_strict() const {
  if (closed_count() == 0) return std::nullopt;
  return static_cast<double>(option_correct_strict + yes_no_correct) / closed_count();
}

std::optional<double> SubtaskSummary::judge_mean() const {
  if (judged == 0) return std::nullopt;
  return judge_sum / judged;
}

std::string yes_no_word(std::string_view answer) {
  size_t start = 0;
  while (start < answer.size() && !std::isalnum(static_cast<unsigned char>(answer[start]))) ++start;
  std::string word;
  for (size_t i = start; i < answer.size() && !std::isspace(static_cast<unsigned char>(answer[i])); ++i) {
    const auto c = static_cast<unsigned char>(answer[i]);
    if (std::isalnum(c)) word += static_cast<char>(std::tolower(c));
  }
  return word == "yes" || word == "no" ? word : "";
}

JudgeRubric rubric_for(Subtask subtask) {
  switch (subtask) {
    case Subtask::kPerceptionMcq:
    case Subtask::kCorruptionMcq: return JudgeRubric::kPerceptionMcq;
    case Subtask::kPerceptionObjectDescription:
    case Subtask::kPerceptionSceneDescription: return JudgeRubric::kPerceptionVqa;
    case Subtask::kPrediction: return JudgeRubric::kPrediction;
    case Subtask::kPlanningObjectDescription:
    case Subtask::kPlanningSceneDescription: return JudgeRubric::kPlanning;
    case Subtask::kBehaviorMcq: return JudgeRubric::kBehavior;
  }
  return JudgeRubric::kPerceptionVqa;
}

QuestionScore score_question(const EvalItem& reference, const EvalItem& prediction, const Meteor* meteor) {
  QuestionScore q;
  q.ground_truth_index = reference.index;
  q.prediction_index = prediction.index;
  q.category = !reference.category.empty() ? reference.category : prediction.category;
  q.question = reference.question;
  q.answer = prediction.answer;
  q.reference = reference.answer;
  q.subtask = classify(q.category, q.question);
  q.kind = answer_shape(q.subtask, q.question).kind;
  switch (q.kind) {
    case AnswerKind::kOption: score_option(q); break;
    case AnswerKind::kYesNo: {
      const std::string expected = yes_no_word(q.reference);
      q.correct = q.correct_strict = !expected.empty() && expected == yes_no_word(q.answer);
      break;
    }
    case AnswerKind::kOpen:
      q.rouge_l = rouge_l(q.answer, q.reference);
      q.meteor = meteor ? meteor->segment(q.answer, q.reference) : 0.0;
      break;
  }
  return q;
}

void summarize(Evaluation& ev, const Meteor* meteor) {
  std::array<SubtaskSummary, kSubtaskCount> by_subtask{};
  std::array<std::vector<std::string>, kSubtaskCount> open_answers, open_references;
  std::map<std::string, Track1Parts> by_category;
  ev.overall = {};
  ev.misread_risk = 0;
  for (const QuestionScore& q : ev.questions) {
    const auto s = static_cast<size_t>(q.subtask);
    SubtaskSummary& sum = by_subtask[s];
    sum.subtask = q.subtask;
    ++sum.count;
    switch (q.kind) {
      case AnswerKind::kOption:
        ++sum.option_count;
        sum.option_correct += q.correct ? 1 : 0;
        sum.option_correct_strict += q.correct_strict ? 1 : 0;
        sum.misread_risk += q.misread_risk ? 1 : 0;
        break;
      case AnswerKind::kYesNo:
        ++sum.yes_no_count;
        sum.yes_no_correct += q.correct ? 1 : 0;
        break;
      case AnswerKind::kOpen:
        ++sum.open_count;
        open_answers[s].push_back(q.answer);
        open_references[s].push_back(q.reference);
        if (q.judge) {
          ++sum.judged;
          sum.judge_sum += *q.judge;
        }
        break;
    }
    sum.track1.add(q);
    by_category[q.category].add(q);
    ev.overall.add(q);
    ev.misread_risk += q.misread_risk ? 1 : 0;
  }
  ev.subtasks.clear();
  for (Subtask s : all_subtasks()) {
    SubtaskSummary& sum = by_subtask[static_cast<size_t>(s)];
    if (sum.count == 0) continue;
    const auto i = static_cast<size_t>(s);
    if (!open_answers[i].empty()) sum.language = score_corpus(open_answers[i], open_references[i], meteor);
    ev.subtasks.push_back(sum);
  }
  ev.categories.clear();
  for (std::string_view name : kCategoryOrder) {
    const auto it = by_category.find(std::string(name));
    if (it == by_category.end()) continue;
    ev.categories.emplace_back(it->first, it->second);
    by_category.erase(it);
  }
  for (const auto& [name, parts] : by_category) ev.categories.emplace_back(name.empty() ? "(none)" : name, parts);
}

Evaluation evaluate(const AnswerFile& ground_truth, const AnswerFile& predictions, const Pairing& pairing,
                    const Meteor* meteor, const JudgeOptions* judge) {
  Evaluation ev;
  ev.questions.reserve(pairing.pairs.size());
  for (const auto& [g, p] : pairing.pairs) {
    ev.questions.push_back(score_question(ground_truth.items[g], predictions.items[p], meteor));
    ev.error_answers += predictions.items[p].answer.starts_with(kErrorAnswerPrefix) ? 1 : 0;
  }
  if (judge) {
    ev.judge_used = true;
    std::vector<size_t> open;
    std::vector<JudgeItem> items;
    for (size_t i = 0; i < ev.questions.size(); ++i) {
      const QuestionScore& q = ev.questions[i];
      if (q.closed()) continue;
      open.push_back(i);
      items.push_back({rubric_for(q.subtask), q.question, q.answer, q.reference});
    }
    if (!items.empty()) {
      const std::vector<std::optional<double>> scores = judge_all(items, *judge, &ev.judge_stats);
      for (size_t k = 0; k < open.size() && k < scores.size(); ++k) ev.questions[open[k]].judge = scores[k];
    }
  }
  summarize(ev, meteor);
  return ev;
}

}  // namespace drivevqa
