// The shape an answer must have to be read right by the Track 1 / DriveBench scorer, per question.
//
// DriveBench reads an MCQ answer by the first standalone a/b/c/d word anywhere in it
// (eval/mcq_reader.h), so only a bare option letter is always read as the letter meant, and
// yes/no questions are read from the answer's first word. The shapes:
//   kOption: multiple choice: one letter among the options the question lists (A-E as present).
//            The MCQ subtasks, and any question that lists "A. ... B. ..." options.
//   kYesNo:  a yes/no question without options (it opens with Is/Are/Will/Would/Does/Do/Can/...
//            and ends with '?'): "Yes." or "No.", then at most one short sentence.
//   kOpen:   free text within the subtask's token budget.
//
// answer_grammar() states the shape as GBNF for llama.cpp's grammar sampler, so decoding can only
// produce answers of that shape (empty for kOpen: no constraint).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "route/route.h"

namespace drivevqa {

enum class AnswerKind { kOption, kYesNo, kOpen };
std::string_view answer_kind_name(AnswerKind k);  // "option", "yes_no", "open"

// --answer_format: structured (shapes asked for and enforced by the grammar), prompted (asked for
// only: to measure the grammar's cost or the model's own compliance), free (the seed's prompts).
enum class AnswerFormat { kStructured, kPrompted, kFree };
AnswerFormat answer_format_from_name(std::string_view name);  // throws UsageError
enum class McqFormat { kLetter, kLetterText };    // --mcq_format letter|letter_text

struct AnswerOption {
  char letter = 'A';
  std::string text;  // the option's text as the question gives it, trimmed ("Going ahead.")
};

struct AnswerShape {
  AnswerKind kind = AnswerKind::kOpen;
  std::vector<AnswerOption> options;  // kOption: in letter order, at least two
};

// The options a question lists: "A. x B. y ..." with consecutive letters from A; empty when fewer
// than two are found.
std::vector<AnswerOption> listed_options(std::string_view question);

// True for a yes/no question by its form (see above).
bool is_yes_no_question(std::string_view question);

AnswerShape answer_shape(Subtask subtask, std::string_view question);

// The longest reason a yes/no answer may add, in characters.
inline constexpr int kYesNoReasonChars = 120;

// GBNF for the shape; "" for kOpen. kOption with kLetterText: the letter, ". ", then the option's
// exact text.
std::string answer_grammar(const AnswerShape& shape, McqFormat mcq_format);

// The most tokens an answer of this shape can take (0 for kOpen: the subtask's budget applies), so
// that a question reserves no more KV cells than its answer can fill.
int answer_token_cap(const AnswerShape& shape, McqFormat mcq_format);

}  // namespace drivevqa
