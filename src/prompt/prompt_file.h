// Prompts as data: a JSON file that replaces any part of the built-in prompts.
//
//   { "system": "...",
//     "hints": { "<Subtask>": "...", ... },          // "" removes a hint
//     "token_budgets": { "<Subtask>": 128, ... },    // subtasks without one use --max_new_tokens_default
//     "answer_instructions": { "option": "...", "option_text": "...", "yes_no": "..." },
//                                                    // said after the question, by answer shape
//     "object_crops": { "<Subtask>": true, ... },    // close-ups per subtask (default: --object_crops)
//     "history_frames": { "<Subtask>": 2, ... } }    // earlier frames per subtask (default: --history_frames)
//
// Subtask names are those written into results (e.g. "Planning-VQAs-Scene-Description").
#pragma once

#include <filesystem>
#include <string>

#include "prompt/task_prompts.h"

namespace drivevqa {

// The prompts in the file format (what `drivevqa prompts` prints).
std::string prompts_to_json(const PromptSet& prompts);

// Applies the parts present in `text` to `prompts`. Throws InputError naming `name` and the bad key.
void apply_prompts_json(const std::string& text, const std::string& name, PromptSet& prompts);
void apply_prompts_file(const std::filesystem::path& path, PromptSet& prompts);

}  // namespace drivevqa
