// Self-consistency: one answer chosen from several sampled answers to the same question.
//
// Closed questions (an option letter, yes/no): each sample votes with what the Track 1 scorer reads
// in it (DriveBench's letter reader, eval/mcq_reader.h; the first word for yes/no,
// eval/track1_score.h). The value with the most votes wins; the reported text is the main answer
// when it reads the same, else the first sample that does. A tie for the most votes, or no sample
// read at all, keeps the main answer (greedy unless the run samples).
//
// Open questions: minimum Bayes risk: the sample whose mean ROUGE-L to the other samples is highest
// (the lowest index among equals); one sample is chosen alone.
//
// Both are pure functions of their inputs: the same samples give the same choice.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/session.h"
#include "prompt/answer_shape.h"

namespace drivevqa {

struct Vote {
  std::string answer;      // the chosen text
  // Closed: each value read and its votes, most votes first (then first seen); the samples' reads
  // in order ("" where nothing was read); the main answer's read.
  std::vector<std::pair<std::string, size_t>> counts;
  std::vector<std::string> reads;
  std::string main_read;
  bool tie = false;        // closed: the most votes were shared (or none): the main answer stands
  bool overrides = false;  // closed: the chosen value differs from the main answer's
  // Open: each sample's mean ROUGE-L to the others, and the index of the chosen sample.
  std::vector<double> agreement;
  size_t chosen = 0;
};

// What the scorer reads in a closed answer: "A".."E" for kOption, "yes"/"no" for kYesNo; "" when
// nothing (or for kOpen).
std::string closed_read(AnswerKind kind, std::string_view answer);

// `kind` is kOption or kYesNo; `samples` may be empty (then the main answer stands).
Vote vote_closed(AnswerKind kind, std::string_view main_answer, std::span<const std::string> samples);

// At least one sample.
Vote pick_by_mbr(std::span<const std::string> samples);

// --self_consistency N with its sampling; fewer than 2 samples: off.
struct SelfConsistency {
  int samples = 0;
  float temperature = 0.7f;
  float top_p = 0.9f;
};

// The answers to decode for one question (engine/parallel_decode.h decodes them as one group):
// `main` alone when off; else the main answer (closed questions only: it settles ties) then the
// samples, each with `main`'s budget and grammar, sampled, with a seed of its own derived from
// main.seed (so the choice does not depend on the order answers are decoded in).
std::vector<GenerationParams> answers_to_decode(const GenerationParams& main, AnswerKind kind, const SelfConsistency& sc);

// The vote over the texts of the answers answers_to_decode asked for, in its order.
Vote choose_answer(AnswerKind kind, std::span<const std::string> answers);

// The vote as a JSON object's text, for the journal: {"method": "majority"|"tie"|"mbr", ...}.
std::string vote_json(const Vote& vote, AnswerKind kind);

}  // namespace drivevqa
