#include "eval/text_tokens.h"

#include <array>
#include <cctype>

namespace drivevqa {
namespace {

// How this differs from the Stanford PTBTokenizer that pycocoevalcap runs (java, CoreNLP 3.4.1):
//   - only ASCII letters are lower-cased; other bytes are kept as they are and count as word bytes;
//   - "1088.3,497.5" splits at the comma (PTB keeps digit groups joined by , . : as one number);
//     "1,000" and "12:30" stay whole;
//   - a full stop after a word is always split off, except in dotted acronyms such as "e.g." or
//     "u.s." (PTB also keeps known abbreviations such as "mr.");
//   - square brackets are dropped like ( ) and { } (PTB writes -LSB-/-RSB-, which pycocoevalcap's
//     punctuation list does not name). Its list is upper-case while the tokenizer runs with
//     -lowerCase, so some pycocoevalcap versions may keep "-lrb-" tokens; we follow the list's intent.
// Nothing the list drops is ever emitted, so the punctuation marks are simply skipped.

bool is_token_byte(unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_letter(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
// s[i] as a byte, or 0 past the end.
unsigned char byte_at(const std::string& s, size_t i) { return i < s.size() ? static_cast<unsigned char>(s[i]) : 0; }

// Lower-cases ASCII and maps typographic quotes, dashes and the ellipsis to their ASCII forms, so
// "it’s" splits like "it's" and "—" is dropped like "--".
std::string normalise(std::string_view text) {
  struct Replacement {
    std::string_view utf8;
    std::string_view ascii;
  };
  static constexpr std::array<Replacement, 8> kReplacements{{{"\u2018", "'"},
                                                             {"\u2019", "'"},
                                                             {"\u201C", "\""},
                                                             {"\u201D", "\""},
                                                             {"\u2013", " -- "},
                                                             {"\u2014", " -- "},
                                                             {"\u2026", " ... "},
                                                             {"\u00A0", " "}}};
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      bool replaced = false;
      for (const auto& r : kReplacements) {
        if (text.substr(i).starts_with(r.utf8)) {
          out += r.ascii;
          i += r.utf8.size();
          replaced = true;
          break;
        }
      }
      if (!replaced) out += text[i++];
      continue;
    }
    out += static_cast<char>(std::tolower(c));
    ++i;
  }
  return out;
}

// The clitics PTB splits off the end of a word ("it's" -> "it" "'s"); "n't" takes the n with it
// ("don't" -> "do" "n't", "can't" -> "ca" "n't").
constexpr std::array<std::string_view, 7> kClitics{"n't", "'s", "'re", "'ll", "'ve", "'m", "'d"};

void push_word(std::string word, std::vector<std::string>& out) {
  if (word == "cannot") {  // PTB: "can" "not"
    out.emplace_back("can");
    out.emplace_back("not");
    return;
  }
  for (const auto clitic : kClitics) {
    if (word.size() > clitic.size() && word.ends_with(clitic)) {
      out.emplace_back(word.substr(0, word.size() - clitic.size()));
      out.emplace_back(clitic);
      return;
    }
  }
  out.push_back(std::move(word));
}

// End of a dotted acronym starting at `i` ("e.g.", "u.s.a."), or `i` when there is none.
size_t dotted_acronym_end(const std::string& s, size_t i) {
  size_t j = i;
  int letters = 0;
  while (j + 1 < s.size() && is_letter(s[j]) && s[j + 1] == '.') {
    j += 2;
    ++letters;
  }
  const bool word_goes_on = j < s.size() && is_token_byte(s[j]);
  return letters >= 2 && !word_goes_on ? j : i;
}

// Reads one word from s[i]: word bytes, digit groups (1088.3, 1,000, 12:30), inner hyphens
// (left-turn) and inner apostrophes (don't, o'clock). Returns the index after it.
size_t read_word(const std::string& s, size_t i, std::string& word) {
  const size_t start = i;
  bool number_has_point = false;
  while (i < s.size()) {
    const unsigned char c = byte_at(s, i);
    const unsigned char next = byte_at(s, i + 1);
    const unsigned char prev = i > start ? byte_at(s, i - 1) : 0;
    if (is_token_byte(c)) {
      ++i;
    } else if ((c == '.' || c == ':') && is_digit(prev) && is_digit(next)) {
      number_has_point = number_has_point || c == '.';
      ++i;
    } else if (c == ',' && is_digit(prev) && !number_has_point && is_digit(next) && is_digit(byte_at(s, i + 2)) &&
               is_digit(byte_at(s, i + 3)) && !is_digit(byte_at(s, i + 4))) {
      ++i;  // thousands separator
    } else if ((c == '-' || c == '\'') && i > start && is_token_byte(prev) && is_token_byte(next)) {
      ++i;
    } else {
      break;
    }
  }
  word.assign(s, start, i - start);
  return i;
}

}  // namespace

std::vector<std::string> coco_tokens(std::string_view text) {
  const std::string s = normalise(text);
  std::vector<std::string> tokens;
  std::string word;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (std::isspace(c)) {
      ++i;
    } else if (const size_t end = dotted_acronym_end(s, i); end != i) {
      tokens.emplace_back(s, i, end - i);
      i = end;
    } else if (is_token_byte(c)) {
      i = read_word(s, i, word);
      push_word(word, tokens);
    } else if (c == '\'' && i + 1 < s.size() && is_token_byte(byte_at(s, i + 1))) {
      // A clitic after a space ("it 's") is a token; otherwise the apostrophe is a quote mark.
      const size_t word_end = read_word(s, i + 1, word);
      bool is_clitic = false;
      for (const auto clitic : kClitics) is_clitic = is_clitic || (clitic[0] == '\'' && clitic.substr(1) == word);
      if (is_clitic) {
        tokens.push_back("'" + word);
        i = word_end;
      } else {
        ++i;
      }
    } else if (std::string_view("<>/%$&#*+=@~^|\\").find(static_cast<char>(c)) != std::string_view::npos) {
      tokens.emplace_back(1, static_cast<char>(c));
      ++i;
    } else {
      ++i;  // . , ; : ? ! - quotes and brackets: in pycocoevalcap's punctuation list
    }
  }
  return tokens;
}

}  // namespace drivevqa
