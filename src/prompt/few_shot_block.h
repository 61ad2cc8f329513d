// Few-shot examples in the prompt (--few_shot): question/answer pairs of the question's own
// subtask, as text, in the question's own part of the user turn (prompt/task_prompts.h), so a
// frame's shared prefix stays the same with or without them.
#pragma once

#include <string>
#include <vector>

namespace drivevqa {

struct FewShotExample {
  std::string question;  // as the knowledge base has it, object references included
  std::string answer;
};

// A header line, then "Question: ...\nAnswer: ...\n" per example. `most_similar_first` is written
// in reverse, so that the most similar example is the last, nearest the question: models weigh
// the nearest context most (in-context example studies find the reversed order best, e.g. Liu et
// al. 2022, "What Makes Good In-Context Examples for GPT-3?"). White space runs become one space;
// an image marker in the text is neutralised. "" for no examples.
std::string few_shot_block(const std::vector<FewShotExample>& most_similar_first);

}  // namespace drivevqa
