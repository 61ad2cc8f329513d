#include "prompt/prompt_file.h"

#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/files.h"
#include "util/text.h"

namespace drivevqa {
namespace {

using Json = nlohmann::ordered_json;

Subtask subtask_key(const std::string& key, const std::string& name, const char* section) {
  try {
    return subtask_from_name(key);
  } catch (const UsageError& e) {
    throw InputError(name + ": " + section + ": " + e.what());
  }
}

}  // namespace

std::string prompts_to_json(const PromptSet& p) {
  Json j;
  j["system"] = p.system;
  Json hints = Json::object(), budgets = Json::object();
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
  if (!p.object_crops.empty()) {
    Json crops = Json::object();
    for (const auto& [s, on] : p.object_crops) crops[std::string(subtask_name(s))] = on;
    j["object_crops"] = crops;
  }
  if (!p.history_frames.empty()) {
    Json history = Json::object();
    for (const auto& [s, n] : p.history_frames) history[std::string(subtask_name(s))] = n;
    j["history_frames"] = history;
  }
  return j.dump(2) + "\n";
}

void apply_prompts_json(const std::string& text, const std::string& name, PromptSet& p) {
  const Json j = parse_ordered_json(text, name);
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
    } else if (key == "object_crops") {
      if (!value.is_object()) throw InputError(name + ": object_crops must be an object of subtask -> true or false");
      for (const auto& [subtask, on] : value.items()) {
        if (!on.is_boolean()) throw InputError(name + ": object_crops." + subtask + " must be true or false");
        p.object_crops[subtask_key(subtask, name, "object_crops")] = on.get<bool>();
      }
    } else if (key == "history_frames") {
      if (!value.is_object()) throw InputError(name + ": history_frames must be an object of subtask -> frames");
      for (const auto& [subtask, n] : value.items()) {
        if (!n.is_number_integer() || n.get<int64_t>() < 0 || n.get<int64_t>() > static_cast<int64_t>(kMaxHistoryFrames)) {
          throw InputError(name + ": history_frames." + subtask + " must be an integer from 0 to " +
                           std::to_string(kMaxHistoryFrames));
        }
        p.history_frames[subtask_key(subtask, name, "history_frames")] = n.get<int>();
      }
    } else {
      throw InputError(name + ": unknown key '" + key +
                       "' (expected system, hints, token_budgets, answer_instructions, object_crops, history_frames)");
    }
  }
}

void apply_prompts_file(const std::filesystem::path& path, PromptSet& prompts) {
  const auto bytes = read_file_bytes(path);
  apply_prompts_json(std::string(bytes.begin(), bytes.end()), path.string(), prompts);
}

}  // namespace drivevqa
