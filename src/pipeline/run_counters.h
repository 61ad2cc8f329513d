// What a run did, counted as it goes: the figures behind the end summary and --stats_json.
#pragma once

#include <cstddef>

namespace drivevqa {

struct StageSeconds {
  double decode_images = 0;  // reading, decoding and resizing image files
  double encode_images = 0;  // the vision tower
  double prefixes = 0;       // evaluating shared prefixes (system turn + a frame's images)
  double questions = 0;      // evaluating question suffixes and generating answers, in parallel
  double grammar = 0;        // of `questions`: checking tokens against the answers' grammars
};

struct RunCounters {
  size_t frames = 0;              // (model, frame) groups answered
  size_t images_decoded = 0;
  size_t images_encoded = 0;
  size_t prefix_evaluations = 0;  // shared prefixes evaluated into a context
  size_t prefix_tokens = 0;
  size_t suffix_tokens = 0;       // prompt tokens evaluated per question (the whole prompt without a prefix)
  size_t close_ups = 0;           // object close-ups cut and marked (once per frame and object)
  size_t close_up_tokens = 0;     // of suffix_tokens, those of the questions' close-ups
  size_t marked_images = 0;       // camera images drawn with markers (once per frame, marker set and model)
  size_t marker_sets = 0;         // frames of their own that markers made: each its own images and prefix
  size_t generated_tokens = 0;
  size_t kb_answers = 0;          // override: answered from the knowledge base, no model run
  size_t few_shot_examples = 0;   // knowledge-base examples shown (--few_shot), all questions together
  size_t few_shot_short = 0;      // questions shown fewer examples than their K (the KB has fewer of the subtask)
  size_t max_parallel = 0;        // most answers decoded together
  size_t decode_calls = 0;        // engine batches of questions (each one step of every running answer)
  // Self-consistency (--self_consistency): samples decoded beside a question's first answer.
  size_t forked_answers = 0;      // answers that forked another's evaluated suffix
  size_t voted_questions = 0;     // questions answered by a vote over samples (or by MBR)
  size_t vote_ties = 0;           // closed questions whose vote tied: the main answer stands
  size_t vote_overrides = 0;      // closed questions whose vote differs from the main answer
  StageSeconds seconds;
};

}  // namespace drivevqa
