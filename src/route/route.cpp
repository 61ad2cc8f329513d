#include "route/route.h"

#include <algorithm>
#include <cctype>

#include "util/error.h"
#include "util/text.h"

namespace drivevqa {
namespace {

constexpr std::array<Subtask, kSubtaskCount> kAll = {
    Subtask::kPerceptionMcq,        Subtask::kPerceptionObjectDescription, Subtask::kPerceptionSceneDescription,
    Subtask::kPrediction,           Subtask::kPlanningObjectDescription,   Subtask::kPlanningSceneDescription,
    Subtask::kCorruptionMcq,        Subtask::kBehaviorMcq};

// An object reference "<c" followed by a digit, somewhere at or after `from`.
bool object_ref_after(const std::string& q, size_t from) {
  for (size_t at = q.find("<c", from); at != std::string::npos; at = q.find("<c", at + 1)) {
    if (at + 2 < q.size() && std::isdigit(static_cast<unsigned char>(q[at + 2]))) return true;
  }
  return false;
}

// std::regex's \s and \d in the "C" locale.
bool is_regex_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }
bool is_regex_digit(char c) { return c >= '0' && c <= '9'; }

bool phrase_then_object(const std::string& q, const char* phrase) {
  const size_t at = q.find(phrase);
  return at != std::string::npos && object_ref_after(q, at);
}

}  // namespace

std::string_view subtask_name(Subtask s) {
  switch (s) {
    case Subtask::kPerceptionMcq: return "Perception-MCQs";
    case Subtask::kPerceptionObjectDescription: return "Perception-VQAs-Object-Description";
    case Subtask::kPerceptionSceneDescription: return "Perception-VQAs-Scene-Description";
    case Subtask::kPrediction: return "Prediction";
    case Subtask::kPlanningObjectDescription: return "Planning-VQAs-Object-Description";
    case Subtask::kPlanningSceneDescription: return "Planning-VQAs-Scene-Description";
    case Subtask::kCorruptionMcq: return "Corruption-MCQs";
    case Subtask::kBehaviorMcq: return "Behavior-MCQs";
  }
  return "?";
}

Subtask subtask_from_name(std::string_view name) {
  for (Subtask s : kAll) {
    if (subtask_name(s) == name) return s;
  }
  std::string known;
  for (Subtask s : kAll) known += (known.empty() ? "" : ", ") + std::string(subtask_name(s));
  throw UsageError("unknown subtask '" + std::string(name) + "' (known: " + known + ")");
}

const std::array<Subtask, kSubtaskCount>& all_subtasks() { return kAll; }

Subtask classify(std::string_view category_in, std::string_view question_in) {
  const std::string category = to_lower(category_in);
  const std::string q = to_lower(question_in);
  if (category == "prediction") return Subtask::kPrediction;
  if (category == "planning") {
    const bool about_object = phrase_then_object(q, "based on") || phrase_then_object(q, "collision with") ||
                              phrase_then_object(q, "what actions");
    return about_object ? Subtask::kPlanningObjectDescription : Subtask::kPlanningSceneDescription;
  }
  // drivevqa's additions, checked before the seed's perception rules would claim them as MCQs.
  if (category == "corruption" || q.find("current type of corruption") != std::string::npos) {
    return Subtask::kCorruptionMcq;
  }
  if (category == "behavior" || q.find("predict the behavior of the ego vehicle") != std::string::npos) {
    return Subtask::kBehaviorMcq;
  }
  if (q.find("please select the correct answer") != std::string::npos || q.find("following options") != std::string::npos ||
      has_option_label(q)) {
    return Subtask::kPerceptionMcq;
  }
  if (asks_visual_description(q)) return Subtask::kPerceptionObjectDescription;
  return Subtask::kPerceptionSceneDescription;
}

bool has_option_label(std::string_view q) {
  for (size_t i = 0; i + 2 < q.size(); ++i) {
    if (q[i] < 'a' || q[i] > 'd' || q[i + 1] != '.' || !is_regex_space(q[i + 2])) continue;
    if (i == 0) return true;
    const char before = q[i - 1];
    if (!((before >= 'a' && before <= 'z') || is_regex_digit(before))) return true;
  }
  return false;
}

bool asks_visual_description(std::string_view q) {
  constexpr std::string_view kPhrase = "what is the visual description of <c";
  // The phrase cannot overlap itself, and digits and spaces never start it: each character is
  // looked at a bounded number of times.
  for (size_t at = q.find(kPhrase); at != std::string_view::npos; at = q.find(kPhrase, at + 1)) {
    size_t i = at + kPhrase.size();
    const size_t digits_from = i;
    while (i < q.size() && is_regex_digit(q[i])) ++i;
    if (i == digits_from || i >= q.size() || q[i] != ',') continue;
    ++i;
    while (i < q.size() && is_regex_space(q[i])) ++i;
    if (q.substr(i, 4) == "cam_") return true;
  }
  return false;
}

std::string_view model_size_name(ModelSize m) { return m == ModelSize::k7B ? "7B" : "72B"; }

RoutingTable::RoutingTable() {
  for (Subtask s : kAll) table_[s] = ModelSize::k7B;
  table_[Subtask::kPerceptionSceneDescription] = ModelSize::k72B;
  table_[Subtask::kPlanningObjectDescription] = ModelSize::k72B;
  table_[Subtask::kPlanningSceneDescription] = ModelSize::k72B;
}

void RoutingTable::apply_override(std::string_view assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string_view::npos) {
    throw UsageError("--route '" + std::string(assignment) + "': expected SUBTASK=7B or SUBTASK=72B");
  }
  const Subtask s = subtask_from_name(assignment.substr(0, eq));
  const std::string model = to_lower(assignment.substr(eq + 1));
  if (model == "7b") table_[s] = ModelSize::k7B;
  else if (model == "72b") table_[s] = ModelSize::k72B;
  else throw UsageError("--route '" + std::string(assignment) + "': the model must be 7B or 72B");
}

}  // namespace drivevqa
