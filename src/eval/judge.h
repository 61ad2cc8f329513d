// An LLM judge over any OpenAI-compatible chat endpoint (llama-server, vLLM, a hosted API).
//
// Each open answer is scored 0-100 against its reference with a rubric per question type (the
// criteria and weights DriveBench publishes, in our words), temperature 0; the score is read from
// "Total Score: N" in the reply. An unparsable reply is asked once more, then counted as missing.
// Replies are cached on disk keyed by (prompt, model), so a rerun sends nothing it has sent before.
//
// What must hold: the API key is sent only as the Authorization header and never printed or
// cached; a missing score is never counted as 0; results are in the order of the items.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace drivevqa {

enum class JudgeRubric { kPerceptionMcq, kPerceptionVqa, kPrediction, kPlanning, kBehavior };

// "perception_mcq", "perception_vqa", "prediction", "planning", "behavior".
std::string_view rubric_name(JudgeRubric r);

struct JudgeItem {
  JudgeRubric rubric = JudgeRubric::kPerceptionVqa;
  std::string question;
  std::string answer;     // the prediction
  std::string reference;  // the ground truth
};

struct JudgeOptions {
  std::string url;                    // base URL, e.g. http://127.0.0.1:8080 (/v1/chat/completions is appended)
  std::string model;                  // the "model" field of each request
  std::string api_key;                // empty: no Authorization header
  int parallel = 4;                   // requests in flight at once
  int timeout_seconds = 300;          // per request
  std::filesystem::path cache_file;   // SQLite file; empty: no cache
};

struct JudgeStats {
  size_t sent = 0;         // HTTP requests made (retries included)
  size_t cached = 0;       // items answered from the cache
  size_t retried = 0;      // items asked twice because the first reply had no score
  size_t missing = 0;      // items without a score in the end
};

// The full prompt sent for an item (the system rubric and the user part), for tests and the cache key.
std::string judge_prompt(const JudgeItem& item);

// "Total Score: 85" anywhere in the reply (case-insensitive, first match); nullopt otherwise or above 100.
std::optional<int> parse_total_score(std::string_view reply);

// Scores every item (0..100, nullopt = missing). Throws InputError when the endpoint cannot be
// reached at all or refuses the key (HTTP 401/403) before any score is read, naming the URL.
std::vector<std::optional<double>> judge_all(std::span<const JudgeItem> items, const JudgeOptions& options,
                                             JudgeStats* stats = nullptr);

}  // namespace drivevqa
