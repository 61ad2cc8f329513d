#include "prompt/answer_shape.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "util/error.h"
#include "util/text.h"

namespace drivevqa {
namespace {

bool is_alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }
bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// Where the option label "<letter>. " (or "<letter>." at the end) starts at or after `from`: the
// letter stands alone (no letter or digit before it). npos when there is none.
size_t find_label(std::string_view q, char letter, size_t from) {
  for (size_t at = q.find(letter, from); at != std::string_view::npos; at = q.find(letter, at + 1)) {
    if (at > 0 && is_alnum(q[at - 1])) continue;
    if (at + 1 >= q.size() || q[at + 1] != '.') continue;
    if (at + 2 < q.size() && !is_space(q[at + 2])) continue;
    return at;
  }
  return std::string_view::npos;
}

// The options that follow the label of 'A' at `a`, while consecutive letters are found.
std::vector<AnswerOption> options_from(std::string_view q, size_t a) {
  std::vector<size_t> labels = {a};
  for (char letter = 'B'; letter <= 'Z'; ++letter) {
    const size_t at = find_label(q, letter, labels.back() + 2);
    if (at == std::string_view::npos) break;
    labels.push_back(at);
  }
  std::vector<AnswerOption> options;
  for (size_t i = 0; i < labels.size(); ++i) {
    const size_t begin = labels[i] + 2;
    const size_t end = i + 1 < labels.size() ? labels[i + 1] : q.size();
    options.push_back({static_cast<char>('A' + i), std::string(trim_spaces(q.substr(begin, end - begin)))});
  }
  return options;
}

// Words that open a question answered by yes or no.
constexpr std::array<std::string_view, 19> kYesNoOpeners = {"is",     "are",   "was",  "were", "will", "would", "does",
                                                             "do",     "did",   "can",  "could", "should", "shall", "has",
                                                             "have",   "had",   "may",  "might", "must"};

std::string first_word_lower(std::string_view s) {
  s = trim_spaces(s);
  size_t n = 0;
  while (n < s.size() && std::isalpha(static_cast<unsigned char>(s[n]))) ++n;
  return to_lower(s.substr(0, n));
}

bool opens_yes_no(std::string_view sentence) {
  const std::string word = first_word_lower(sentence);
  return std::find(kYesNoOpeners.begin(), kYesNoOpeners.end(), word) != kYesNoOpeners.end();
}

// A GBNF string literal: quotes, backslashes and control characters escaped.
std::string gbnf_literal(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

std::string_view answer_kind_name(AnswerKind k) {
  switch (k) {
    case AnswerKind::kOption: return "option";
    case AnswerKind::kYesNo: return "yes_no";
    case AnswerKind::kOpen: return "open";
  }
  return "?";
}

AnswerFormat answer_format_from_name(std::string_view name) {
  if (name == "structured") return AnswerFormat::kStructured;
  if (name == "prompted") return AnswerFormat::kPrompted;
  if (name == "free") return AnswerFormat::kFree;
  throw UsageError("--answer_format '" + std::string(name) + "': expected structured, prompted or free");
}

std::vector<AnswerOption> listed_options(std::string_view question) {
  // The first 'A' label that starts a list of at least two options (an "A." inside the question
  // text before the options does not stop the search).
  for (size_t a = find_label(question, 'A', 0); a != std::string_view::npos; a = find_label(question, 'A', a + 1)) {
    std::vector<AnswerOption> options = options_from(question, a);
    if (options.size() >= 2) return options;
    break;  // no 'B' label after this 'A', so none after a later one: stop (linear, not quadratic)
  }
  return {};
}

bool is_yes_no_question(std::string_view question) {
  const std::string_view q = trim_spaces(question);
  if (q.empty() || q.back() != '?' || !listed_options(q).empty()) return false;
  if (opens_yes_no(q)) return true;
  // Or its last sentence opens like one ("Look at <c1,...>. Is it moving?").
  const size_t cut = q.substr(0, q.size() - 1).find_last_of(".?!");
  return cut != std::string_view::npos && opens_yes_no(q.substr(cut + 1));
}

AnswerShape answer_shape(Subtask subtask, std::string_view question) {
  AnswerShape shape;
  shape.options = listed_options(question);
  const bool mcq_subtask = subtask == Subtask::kPerceptionMcq || subtask == Subtask::kCorruptionMcq ||
                           subtask == Subtask::kBehaviorMcq;
  if (!shape.options.empty()) {
    shape.kind = AnswerKind::kOption;
  } else if (mcq_subtask) {
    // Classified as multiple choice, but the options could not be read: the letters the scorer reads.
    shape.kind = AnswerKind::kOption;
    const int letters = subtask == Subtask::kCorruptionMcq ? 5 : 4;
    for (int i = 0; i < letters; ++i) shape.options.push_back({static_cast<char>('A' + i), ""});
  } else if (is_yes_no_question(question)) {
    shape.kind = AnswerKind::kYesNo;
  }
  return shape;
}

std::string answer_grammar(const AnswerShape& shape, McqFormat mcq_format) {
  switch (shape.kind) {
    case AnswerKind::kOpen: return "";
    case AnswerKind::kYesNo:
      // "Yes." or "No.", then at most one short sentence: no sentence end inside, one at its end.
      return "root ::= (\"Yes.\" | \"No.\") reason?\n"
             "reason ::= \" \" [^.!?\\n] [^.!?\\n]{0," + std::to_string(kYesNoReasonChars - 2) + "} [.!?]\n";
    case AnswerKind::kOption: {
      std::string rule = "root ::= ";
      for (size_t i = 0; i < shape.options.size(); ++i) {
        const AnswerOption& o = shape.options[i];
        std::string answer(1, o.letter);
        if (mcq_format == McqFormat::kLetterText && !o.text.empty()) answer += ". " + o.text;
        rule += (i ? " | " : "") + gbnf_literal(answer);
      }
      return rule + "\n";
    }
  }
  return "";
}

int answer_token_cap(const AnswerShape& shape, McqFormat mcq_format) {
  switch (shape.kind) {
    case AnswerKind::kOpen: return 0;
    case AnswerKind::kYesNo: return kYesNoReasonChars + 4;  // a token holds at least one character
    case AnswerKind::kOption: {
      // The letter and the end of turn; with the text, at most one token per character of it.
      size_t longest = 0;
      if (mcq_format == McqFormat::kLetterText) {
        for (const AnswerOption& o : shape.options) longest = std::max(longest, o.text.size() + 2);
      }
      return static_cast<int>(2 + longest);
    }
  }
  return 0;
}

}  // namespace drivevqa
