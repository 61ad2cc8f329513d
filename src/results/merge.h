// Joining the results files of a sharded run (dataset/shard.h) into the one an unsharded run writes.
//
// A shard's results file lists its items as `run` writes them: each input object unchanged, plus
// the fields run adds (results_file.h). An entry is matched to a question-file item by that object
// without the added fields, so no identifier has to be written into the user's items; identical
// items are matched in order of appearance.
//
// What must hold: the merge succeeds only when every item of the question file is answered exactly
// once across the inputs and nothing else is there; it then lists the entries in the question
// file's order, as they were (the unsharded run's file, byte for byte, when the answers are the
// same). Otherwise InputError names the missing, doubled or foreign items (file and position).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "dataset/question_file.h"

namespace drivevqa {

struct ResultsInput {
  std::string name;                        // its path, for messages
  std::vector<nlohmann::ordered_json> entries;
};

// Reads a results file (a JSON list of objects). Throws InputError naming the file and the problem.
ResultsInput read_results_input(const std::string& path);

struct MergedResults {
  std::vector<nlohmann::ordered_json> entries;  // in the question file's order
  size_t error_answers = 0;                    // entries whose answer is a drivevqa error answer
};

MergedResults merge_results(const std::vector<QuestionItem>& questions, const std::vector<ResultsInput>& inputs);

}  // namespace drivevqa
