#include "prompt/prompt_file.h"

#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/files.h"
#include "util/text.h"

namespace drivevqa {
namespace {

using OrderedJson = nlohmann::ordered_json;

Subtask subtask_key(const std::string& key, const std::string& name, const char* section) {
  try {
    return subtask_from_name(key);
  } catch (const UsageError& e) {
    throw InputError(name + ": " + section + ": " + e.what());
  }
}

// The per-subtask settings the prompts file may hold beside the prompts (each also a flag of `run`).
struct SubtaskSwitch {
  const char* key;
  std::map<Subtask, bool> PromptSet::*field;
};
struct SubtaskCount {
  const char* key;
  std::map<Subtask, int> PromptSet::*field;
  int most;  // allowed: 0..most
};
constexpr SubtaskSwitch kSwitches[] = {
    {"object_crops", &PromptSet::object_crops},
    {"draw_markers", &PromptSet::draw_markers},
};
constexpr SubtaskCount kCounts[] = {
    {"history_frames", &PromptSet::history_frames, static_cast<int>(kMaxHistoryFrames)},
    {"few_shot", &PromptSet::few_shot, kMaxFewShot},
    {"self_consistency", &PromptSet::self_consistency, kMaxSelfConsistency},
};

template <typename Setting, size_t N>
const Setting* find_setting(const Setting (&table)[N], const std::string& key) {
  for (const Setting& s : table) {
    if (key == s.key) return &s;
  }
  return nullptr;
}

std::string setting_names() {
  std::string names;
  for (const SubtaskSwitch& k : kSwitches) names += std::string(names.empty() ? "" : ", ") + k.key;
  for (const SubtaskCount& k : kCounts) names += std::string(", ") + k.key;
  return names;
}

template <typename T>
OrderedJson per_subtask_json(const std::map<Subtask, T>& settings) {
  OrderedJson j = OrderedJson::object();
  for (const auto& [s, v] : settings) j[std::string(subtask_name(s))] = v;
  return j;
}

void read_switches(const OrderedJson& value, const std::string& name, const SubtaskSwitch& k, PromptSet& p) {
  if (!value.is_object()) throw InputError(name + ": " + k.key + " must be an object of subtask -> true or false");
  for (const auto& [subtask, on] : value.items()) {
    if (!on.is_boolean()) throw InputError(name + ": " + k.key + "." + subtask + " must be true or false");
    (p.*k.field)[subtask_key(subtask, name, k.key)] = on.get<bool>();
  }
}

void read_counts(const OrderedJson& value, const std::string& name, const SubtaskCount& k, PromptSet& p) {
  if (!value.is_object()) throw InputError(name + ": " + k.key + " must be an object of subtask -> count");
  for (const auto& [subtask, n] : value.items()) {
    if (!n.is_number_integer() || n.get<int64_t>() < 0 || n.get<int64_t>() > k.most) {
      throw InputError(name + ": " + k.key + "." + subtask + " must be an integer from 0 to " + std::to_string(k.most));
    }
    (p.*k.field)[subtask_key(subtask, name, k.key)] = n.get<int>();
  }
}

}  // namespace

std::string prompts_to_json(const PromptSet& p) {
  OrderedJson j;
  j["system"] = p.system;
  OrderedJson hints = OrderedJson::object(), budgets = OrderedJson::object();
  for (Subtask s : all_subtasks()) {
    const auto h = p.hints.find(s);
    hints[std::string(subtask_name(s))] = h != p.hints.end() ? h->second : "";
    if (const auto b = p.token_budgets.find(s); b != p.token_budgets.end()) budgets[std::string(subtask_name(s))] = b->second;
  }
  j["hints"] = hints;
  j["token_budgets"] = budgets;
  j["answer_instructions"] = {{"option", p.option_instruction},
                              {"option_text", p.option_text_instruction},
                              {"yes_no", p.yes_no_instruction}};
  // Only when set: the text is part of a run's journal key, which must not change for runs without it.
  for (const SubtaskSwitch& k : kSwitches) {
    if (!(p.*k.field).empty()) j[k.key] = per_subtask_json(p.*k.field);
  }
  for (const SubtaskCount& k : kCounts) {
    if (!(p.*k.field).empty()) j[k.key] = per_subtask_json(p.*k.field);
  }
  return j.dump(2) + "\n";
}

void apply_prompts_json(const std::string& text, const std::string& name, PromptSet& p) {
  const OrderedJson j = parse_ordered_json(text, name);
  if (!j.is_object()) throw InputError(name + ": expected a JSON object with system, hints and token_budgets");
  for (const auto& [key, value] : j.items()) {
    if (key == "system") {
      if (!value.is_string()) throw InputError(name + ": system must be a string");
      p.system = value.get<std::string>();
    } else if (key == "hints") {
      if (!value.is_object()) throw InputError(name + ": hints must be an object of subtask -> text");
      for (const auto& [subtask, hint] : value.items()) {
        if (!hint.is_string()) throw InputError(name + ": hints." + subtask + " must be a string");
        p.hints[subtask_key(subtask, name, "hints")] = hint.get<std::string>();
      }
    } else if (key == "token_budgets") {
      if (!value.is_object()) throw InputError(name + ": token_budgets must be an object of subtask -> tokens");
      for (const auto& [subtask, budget] : value.items()) {
        if (!budget.is_number_integer() || budget.get<int64_t>() < 1 || budget.get<int64_t>() > (1 << 20)) {
          throw InputError(name + ": token_budgets." + subtask + " must be a positive integer");
        }
        p.token_budgets[subtask_key(subtask, name, "token_budgets")] = budget.get<int>();
      }
    } else if (key == "answer_instructions") {
      if (!value.is_object()) throw InputError(name + ": answer_instructions must be an object of shape -> text");
      for (const auto& [shape, text] : value.items()) {
        if (!text.is_string()) throw InputError(name + ": answer_instructions." + shape + " must be a string");
        std::string* slot = shape == "option"        ? &p.option_instruction
                            : shape == "option_text" ? &p.option_text_instruction
                            : shape == "yes_no"      ? &p.yes_no_instruction
                                                     : nullptr;
        if (!slot) throw InputError(name + ": answer_instructions: unknown shape '" + shape + "' (expected option, option_text, yes_no)");
        *slot = text.get<std::string>();
      }
    } else if (const SubtaskSwitch* k = find_setting(kSwitches, key)) {
      read_switches(value, name, *k, p);
    } else if (const SubtaskCount* k = find_setting(kCounts, key)) {
      read_counts(value, name, *k, p);
    } else {
      throw InputError(name + ": unknown key '" + key +
                       "' (expected system, hints, token_budgets, answer_instructions, " + setting_names() + ")");
    }
  }
}

void apply_prompts_file(const std::filesystem::path& path, PromptSet& prompts) {
  const auto bytes = read_file_bytes(path);
  apply_prompts_json(std::string(bytes.begin(), bytes.end()), path.string(), prompts);
}

}  // namespace drivevqa
