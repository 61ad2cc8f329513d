// The results file: the input items in input order, each with its original fields unchanged and in
// their order, plus `subtask`, `model_routed`, `model_used` and `answer` (an existing `answer`
// field is filled in place).
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <vector>

#include "dataset/question_file.h"
#include "results/item_result.h"

namespace drivevqa {

nlohmann::ordered_json result_json(const QuestionItem& item, const ItemResult& result);

// Replaces `path` atomically. Throws OutputError naming the path.
void write_results(const std::filesystem::path& path, const std::vector<nlohmann::ordered_json>& results);

}  // namespace drivevqa
