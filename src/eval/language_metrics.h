// Language metrics over one reference per answer, as pycocoevalcap computes them on coco_tokens()
// (eval/text_tokens.h).
//
//   BLEU-1..4: corpus level, brevity penalty from the closest reference length, counts smoothed
//              in log space (+1e-15 on matches, +1e-9 on guesses) as pycocoevalcap does.
//   ROUGE-L:   LCS F-measure with beta 1.2, per answer, then averaged.
//   CIDEr-D:   n = 1..4, sigma 6, clipped tf-idf, x10, IDF from the references of the scored set.
//   METEOR:    eval/meteor.h, aggregated over the set.
// An empty answer or reference scores 0 where pycocoevalcap would divide by zero.
#pragma once

#include <array>
#include <span>
#include <string>
#include <vector>

namespace drivevqa {

class Meteor;

struct CorpusScores {
  std::array<double, 4> bleu{};  // BLEU-1..4
  double rouge_l = 0;
  double cider = 0;
  double meteor = 0;  // 0 when no Meteor was given
  size_t count = 0;
};

// predictions[i] is scored against references[i]; the spans have the same size. `meteor` may be null.
CorpusScores score_corpus(std::span<const std::string> predictions, std::span<const std::string> references,
                          const Meteor* meteor);

// One answer's ROUGE-L (the per-question part of the Track 1 score).
double rouge_l(std::string_view prediction, std::string_view reference);

}  // namespace drivevqa
