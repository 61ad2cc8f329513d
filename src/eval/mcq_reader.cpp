#include "eval/mcq_reader.h"

#include <array>
#include <cctype>
#include <string>

#include "util/text.h"

namespace drivevqa {
namespace {

// Python's \b on str counts Unicode letters and digits as word characters; here only ASCII
// letters, digits and '_' do, and every byte of a UTF-8 sequence counts as a non-word byte. That
// only differs when a letter option touches a non-ASCII letter ("éa").
bool is_ascii_word_byte(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u < 0x80 && (std::isalnum(u) || u == '_');
}

// Python's \b at `pos`: a word byte on exactly one side.
bool word_boundary_at(std::string_view text, size_t pos) {
  const bool word_before = pos > 0 && is_ascii_word_byte(text[pos - 1]);
  const bool word_after = pos < text.size() && is_ascii_word_byte(text[pos]);
  return word_before != word_after;
}

// re.search(r"\b(first|second)\b", text) is not None, without a regex engine (std::regex recurses
// per character and can overflow the stack on long answers).
bool search_bounded(std::string_view text, std::string_view first, std::string_view second) {
  for (size_t pos = 0; pos < text.size(); ++pos) {
    if (!word_boundary_at(text, pos)) continue;
    for (const std::string_view alternative : {first, second}) {
      if (text.substr(pos).starts_with(alternative) && word_boundary_at(text, pos + alternative.size())) return true;
    }
  }
  return false;
}

bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }


}  // namespace

std::optional<char> drivebench_letter(std::string_view answer) {
  const std::string text = to_lower(trim_spaces(answer));
  // The order matters: "C. Going ahead. The object is ..." holds the article "a", so it reads as A.
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 4> kPatterns{
      {{"a", "option a"}, {"b", "option b"}, {"c", "option c"}, {"d", "option d"}}};
  for (const auto& [letter, option] : kPatterns) {
    if (search_bounded(text, letter, option)) return static_cast<char>(std::toupper(letter[0]));
  }
  return std::nullopt;
}

std::optional<char> strict_letter(std::string_view answer) {
  const std::string text = to_lower(answer);
  std::string_view rest = text;
  const auto skip_spaces = [&rest] {
    while (!rest.empty() && is_space(rest.front())) rest.remove_prefix(1);
  };
  skip_spaces();
  if (rest.starts_with("option") && rest.size() > 6 && is_space(rest[6])) {
    rest.remove_prefix(6);
    skip_spaces();
  } else if (rest.starts_with("answer:")) {
    rest.remove_prefix(7);
    skip_spaces();
  }
  if (rest.empty() || rest[0] < 'a' || rest[0] > 'e') return std::nullopt;
  const char letter = rest[0];
  rest.remove_prefix(1);
  if (!rest.empty() && !is_space(rest[0]) && std::string_view(".):,").find(rest[0]) == std::string_view::npos) {
    return std::nullopt;
  }
  return static_cast<char>(std::toupper(static_cast<unsigned char>(letter)));
}

}  // namespace drivevqa
