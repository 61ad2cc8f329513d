#include "support/answer_shapes.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "eval/mcq_reader.h"
#include "prompt/answer_shape.h"
#include "route/route.h"

namespace drivevqa::test {

ShapeCounts count_answer_shapes(const nlohmann::json& results, const std::string& label) {
  ShapeCounts c;
  for (const auto& item : results) {
    const std::string answer = item["answer"];
    if (answer.rfind("[drivevqa error]", 0) == 0) continue;
    const AnswerShape shape = answer_shape(subtask_from_name(item["subtask"].get<std::string>()), item["question"].get<std::string>());
    if (shape.kind == AnswerKind::kOption) {
      ++c.mcq;
      const bool one_letter = answer.size() == 1 && std::any_of(shape.options.begin(), shape.options.end(),
                                                                [&](const AnswerOption& o) { return o.letter == answer[0]; });
      c.mcq_ok += one_letter ? 1 : 0;
      const auto read = drivebench_letter(answer);
      if (answer == "E") c.unreadable_e += read ? 0 : 1;  // DriveBench's reader has no pattern for E
      else c.read_as_generated += read && *read == answer[0] ? 1 : 0;
    } else if (shape.kind == AnswerKind::kYesNo) {
      ++c.yes_no;
      c.yes_no_ok += answer.rfind("Yes.", 0) == 0 || answer.rfind("No.", 0) == 0 ? 1 : 0;
    }
  }
  std::printf("%s: %zu MCQ answers (%zu one valid letter, %zu read by DriveBench's reader as generated, %zu E), "
              "%zu yes/no answers (%zu open with Yes./No.)\n",
              label.c_str(), c.mcq, c.mcq_ok, c.read_as_generated, c.unreadable_e, c.yes_no, c.yes_no_ok);
  return c;
}

void expect_all_shaped(const ShapeCounts& c) {
  EXPECT_GE(c.mcq, 12u);     // 4 frames x 3 MCQs (perception, corruption, behavior)
  EXPECT_GE(c.yes_no, 16u);  // 4 frames x 4 yes/no predictions
  EXPECT_EQ(c.mcq_ok, c.mcq);
  EXPECT_EQ(c.read_as_generated + c.unreadable_e, c.mcq);
  EXPECT_EQ(c.yes_no_ok, c.yes_no);
}

}  // namespace drivevqa::test
