#include "results/merge.h"

#include <deque>
#include <map>

#include "results/results_file.h"
#include "util/error.h"
#include "util/files.h"
#include "util/text.h"

namespace drivevqa {
namespace {

// The most items a message lists one by one; the rest are counted.
constexpr size_t kListedItems = 10;

// An entry without the fields `run` adds: what it was in the question file.
std::string identity_of(nlohmann::ordered_json entry) {
  for (const char* added : {"subtask", "model_routed", "model_used", "answer"}) entry.erase(added);
  return entry.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

// The first `max` bytes of `text`, cut at a UTF-8 character boundary, with "..." when cut.
std::string abbreviate(const std::string& text, size_t max) {
  if (text.size() <= max) return text;
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut) + "...";
}

std::string describe_item(const QuestionItem& item) {
  std::string text = "item " + std::to_string(item.index);
  if (!item.frame_token.empty()) text += " (frame " + item.frame_token + ")";
  if (!item.question.empty()) text += ": \"" + abbreviate(item.question, 60) + "\"";
  return text;
}

// "\n<what> (N):" and a line per item, the first kListedItems of them.
std::string listing(const std::string& what, const std::vector<std::string>& lines) {
  std::string text = "\n" + what + " (" + std::to_string(lines.size()) + "):";
  for (size_t i = 0; i < lines.size() && i < kListedItems; ++i) text += "\n  " + lines[i];
  if (lines.size() > kListedItems) text += "\n  ... and " + std::to_string(lines.size() - kListedItems) + " more";
  return text;
}

}  // namespace

ResultsInput read_results_input(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  const nlohmann::ordered_json list =
      parse_ordered_json(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), path);
  if (!list.is_array()) throw InputError(path + ": not a results file (expected a JSON list of answered items)");
  ResultsInput input{path, {}};
  for (size_t i = 0; i < list.size(); ++i) {
    if (!list[i].is_object() || !list[i].contains("answer")) {
      throw InputError(path + ": entry " + std::to_string(i) + " is not an answered item (an object with an \"answer\")");
    }
    input.entries.push_back(list[i]);
  }
  return input;
}

MergedResults merge_results(const std::vector<QuestionItem>& questions, const std::vector<ResultsInput>& inputs) {
  std::map<std::string, std::deque<size_t>> unanswered;  // identity -> positions in `questions`, in order
  std::map<std::string, size_t> last_of;                 // identity -> its last position
  for (size_t i = 0; i < questions.size(); ++i) {
    const std::string identity = identity_of(result_json(questions[i], ItemResult{}));
    unanswered[identity].push_back(i);
    last_of[identity] = i;
  }
  std::vector<const nlohmann::ordered_json*> answer_of(questions.size(), nullptr);
  std::vector<std::string> where(questions.size());  // "file entry j" of each answer, for messages
  std::vector<std::string> doubled, foreign;
  for (const ResultsInput& input : inputs) {
    for (size_t j = 0; j < input.entries.size(); ++j) {
      const std::string here = input.name + " entry " + std::to_string(j);
      const auto it = unanswered.find(identity_of(input.entries[j]));
      if (it == unanswered.end()) {
        foreign.push_back(here + " is not an item of the question file");
      } else if (it->second.empty()) {
        // Every copy of this item is answered already: name the one it repeats (the last of them).
        const size_t last = last_of.at(it->first);
        doubled.push_back(describe_item(questions[last]) + ": " + here + " and " + where[last]);
      } else {
        const size_t i = it->second.front();
        it->second.pop_front();
        answer_of[i] = &input.entries[j];
        where[i] = here;
      }
    }
  }
  std::vector<std::string> missing;
  for (size_t i = 0; i < questions.size(); ++i) {
    if (!answer_of[i]) missing.push_back(describe_item(questions[i]));
  }
  if (!missing.empty() || !doubled.empty() || !foreign.empty()) {
    std::string message = "the results do not answer every item exactly once";
    if (!missing.empty()) message += listing("items no input answers (a shard missing or unfinished?)", missing);
    if (!doubled.empty()) message += listing("items answered more than once", doubled);
    if (!foreign.empty()) message += listing("entries that are not items of the question file", foreign);
    throw InputError(message);
  }
  MergedResults merged;
  for (const nlohmann::ordered_json* entry : answer_of) {
    merged.entries.push_back(*entry);
    const auto answer = entry->find("answer");
    if (answer->is_string() && answer->get<std::string>().starts_with(kErrorAnswerPrefix)) ++merged.error_answers;
  }
  return merged;
}

}  // namespace drivevqa
