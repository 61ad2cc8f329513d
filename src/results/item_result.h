// What answering one item produced: the unit the journal stores and the results file lists.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "route/route.h"

namespace drivevqa {

// Error answers start with this, so that users and tools can find them.
inline constexpr std::string_view kErrorAnswerPrefix = "[drivevqa error] ";

struct ItemResult {
  Subtask subtask = Subtask::kPerceptionMcq;
  ModelSize routed = ModelSize::k7B;
  std::string model_used;   // "7B", "72B", "7B_fallback", "kb"; "none" for error answers
  std::string answer;
  size_t generated_tokens = 0;  // over all of its answers (self-consistency samples included)
  size_t prompt_tokens = 0;     // its prompt's tokens (shared prefix included), and of those the
  size_t cached_prompt_tokens = 0;  // prefix's when another request's work had it in the cache already
  bool cut_by_budget = false;   // the (main) answer ran out of tokens rather than ending
  bool is_error = false;
  std::string votes;  // self-consistency: how the answer was chosen, a JSON object (vote/); "" when not voted
};

}  // namespace drivevqa
