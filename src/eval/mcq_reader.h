// Reading the option letter out of a multiple-choice answer, two ways.
//
// drivebench_letter: DriveBench's published reader (evaluate/utils.py), exactly: lower-case and
//   strip the answer, then try `\b(a|option a)\b`, then b, c, d, and take the first pattern that
//   occurs anywhere. So "C. Going ahead. The object is ..." reads as A, and E is never read.
// strict_letter: the letter the answer leads with: after optional spaces and an optional
//   "option"/"answer:" word, one letter A-E (any case) followed by the end, a space or one of . ) : ,
//
// Both return an upper-case letter, or nullopt when nothing can be read.
#pragma once

#include <optional>
#include <string_view>

namespace drivevqa {

std::optional<char> drivebench_letter(std::string_view answer);
std::optional<char> strict_letter(std::string_view answer);

}  // namespace drivevqa
