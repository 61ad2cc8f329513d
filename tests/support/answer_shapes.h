// Counting the answer shapes of a results file (prompt/answer_shape.h), for the tests that check
// that every MCQ answer is one valid letter the scorer reads as such and every yes/no answer opens
// with "Yes." or "No.".
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace drivevqa::test {

struct ShapeCounts {
  size_t mcq = 0, mcq_ok = 0, read_as_generated = 0, unreadable_e = 0, yes_no = 0, yes_no_ok = 0;
};

// Counts over the answered items of `results` (error answers skipped); prints them under `label`.
ShapeCounts count_answer_shapes(const nlohmann::json& results, const std::string& label);

// The demo's answers all have their shapes (and the demo has enough of each to tell).
void expect_all_shaped(const ShapeCounts& counts);

}  // namespace drivevqa::test
