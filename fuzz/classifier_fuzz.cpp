// The question classifier (route/route.h) and the answer-shape reader (prompt/answer_shape.h): the
// text up to the first newline is the category, the rest the question (no newline: no category).
// Beyond not crashing, the documented contracts must hold: classify ignores case, and
// listed_options gives none or at least two options, lettered from A without gaps.
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz/fuzz_target.h"
#include "prompt/answer_shape.h"
#include "route/route.h"
#include "util/text.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t newline = input.find('\n');
  const std::string_view category = newline == std::string_view::npos ? std::string_view() : input.substr(0, newline);
  const std::string_view question = newline == std::string_view::npos ? input : input.substr(newline + 1);

  const drivevqa::Subtask subtask = drivevqa::classify(category, question);
  if (drivevqa::classify(drivevqa::to_lower(category), drivevqa::to_lower(question)) != subtask) std::abort();

  const auto options = drivevqa::listed_options(question);
  if (options.size() == 1) std::abort();
  for (size_t i = 0; i < options.size(); ++i) {
    if (options[i].letter != static_cast<char>('A' + i)) std::abort();
  }
  const bool yes_no = drivevqa::is_yes_no_question(question);
  if (yes_no && !options.empty()) std::abort();  // a question with options is not a yes/no question

  const drivevqa::AnswerShape shape = drivevqa::answer_shape(subtask, question);
  for (const auto format : {drivevqa::McqFormat::kLetter, drivevqa::McqFormat::kLetterText}) {
    const std::string grammar = drivevqa::answer_grammar(shape, format);
    if ((shape.kind == drivevqa::AnswerKind::kOpen) != grammar.empty()) std::abort();
    drivevqa::answer_token_cap(shape, format);
  }
  return 0;
}
