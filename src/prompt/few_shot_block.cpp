#include "prompt/few_shot_block.h"

#include <cctype>

#include "prompt/chat_prompt.h"
#include "util/text.h"

namespace drivevqa {
namespace {

// One line: white space folded (a multi-line answer must not read as a new example), and no
// engine image marker (each one would claim an image).
std::string one_line(const std::string& text) {
  std::string line = fold_spaces(text);
  for (size_t at = line.find(kImageMarker); at != std::string::npos; at = line.find(kImageMarker, at)) {
    line.replace(at, kImageMarker.size(), "<image>");
  }
  return line;
}

}  // namespace

std::string few_shot_block(const std::vector<FewShotExample>& most_similar_first) {
  if (most_similar_first.empty()) return "";
  std::string block = "Examples of similar questions with their answers:\n";
  for (auto it = most_similar_first.rbegin(); it != most_similar_first.rend(); ++it) {
    block += "Question: " + one_line(it->question) + "\nAnswer: " + one_line(it->answer) + "\n";
  }
  return block;
}

}  // namespace drivevqa
