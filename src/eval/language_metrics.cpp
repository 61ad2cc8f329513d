#include "eval/language_metrics.h"

#include <algorithm>
#include <cmath>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "eval/meteor.h"
#include "eval/text_tokens.h"
#include "util/error.h"

namespace drivevqa {
namespace {

constexpr int kMaxN = 4;  // BLEU-4 and CIDEr's n = 1..4

using Tokens = std::vector<std::string>;
// An n-gram is its tokens joined by single spaces (tokens hold no spaces), so n-grams of every
// order share one map.
using NgramCounts = std::unordered_map<std::string, int>;

std::string ngram_key(const Tokens& tokens, size_t begin, int n) {
  std::string key = tokens[begin];
  for (int k = 1; k < n; ++k) (key += ' ') += tokens[begin + static_cast<size_t>(k)];
  return key;
}

// Counts of every n-gram with n in [1, kMaxN].
NgramCounts count_ngrams(const Tokens& tokens) {
  NgramCounts counts;
  for (int n = 1; n <= kMaxN; ++n) {
    for (size_t i = 0; i + static_cast<size_t>(n) <= tokens.size(); ++i) ++counts[ngram_key(tokens, i, n)];
  }
  return counts;
}

int ngram_order(std::string_view key) { return 1 + static_cast<int>(std::count(key.begin(), key.end(), ' ')); }

// pycocoevalcap's Bleu: clipped n-gram matches and n-gram guesses summed over the corpus, the
// brevity penalty from the summed lengths (with one reference, "closest" is that reference).
std::array<double, 4> bleu(const std::vector<Tokens>& hyps, const std::vector<Tokens>& refs) {
  constexpr double kTiny = 1e-15;  // added to matches
  constexpr double kSmall = 1e-9;  // added to guesses
  std::array<double, kMaxN> correct{}, guesses{};
  double hyp_length = 0, ref_length = 0;
  for (size_t p = 0; p < hyps.size(); ++p) {
    const NgramCounts hyp_counts = count_ngrams(hyps[p]);
    const NgramCounts ref_counts = count_ngrams(refs[p]);
    for (const auto& [ngram, count] : hyp_counts) {
      const auto it = ref_counts.find(ngram);
      if (it != ref_counts.end()) correct[static_cast<size_t>(ngram_order(ngram) - 1)] += std::min(count, it->second);
    }
    const auto length = static_cast<double>(hyps[p].size());
    for (int k = 0; k < kMaxN; ++k) guesses[static_cast<size_t>(k)] += std::max(length - k, 0.0);
    hyp_length += length;
    ref_length += static_cast<double>(refs[p].size());
  }
  // The product of precisions is taken in log space: its terms can be as small as 1e-15 each.
  std::array<double, 4> scores{};
  double log_product = 0;
  for (size_t k = 0; k < kMaxN; ++k) {
    log_product += std::log((correct[k] + kTiny) / (guesses[k] + kSmall));
    scores[k] = std::exp(log_product / static_cast<double>(k + 1));
  }
  const double ratio = (hyp_length + kTiny) / (ref_length + kSmall);
  if (ratio < 1) {
    for (double& s : scores) s *= std::exp(1 - 1 / ratio);
  }
  return scores;
}

size_t longest_common_subsequence(const Tokens& a, const Tokens& b) {
  std::vector<size_t> previous(b.size() + 1, 0), current(b.size() + 1, 0);
  for (const auto& token : a) {
    for (size_t j = 1; j <= b.size(); ++j) {
      current[j] = token == b[j - 1] ? previous[j - 1] + 1 : std::max(previous[j], current[j - 1]);
    }
    std::swap(previous, current);
  }
  return previous[b.size()];
}

double rouge_l_tokens(const Tokens& hyp, const Tokens& ref) {
  constexpr double kBeta = 1.2;
  if (hyp.empty() || ref.empty()) return 0;
  const auto lcs = static_cast<double>(longest_common_subsequence(hyp, ref));
  const double precision = lcs / static_cast<double>(hyp.size());
  const double recall = lcs / static_cast<double>(ref.size());
  if (precision == 0 || recall == 0) return 0;
  return (1 + kBeta * kBeta) * precision * recall / (recall + kBeta * kBeta * precision);
}

// One sentence as CIDEr sees it: tf-idf weights per n-gram order, their norms, and its "length".
struct TfIdfVector {
  std::array<std::unordered_map<std::string_view, double>, kMaxN> weights;
  std::array<double, kMaxN> norms{};
  double length = 0;
};

class CiderScorer {
 public:
  // Document frequencies come from the references of the scored set, as pycocoevalcap does.
  explicit CiderScorer(const std::vector<NgramCounts>& ref_counts)
      : log_documents_(std::log(static_cast<double>(ref_counts.size()))) {
    for (const auto& counts : ref_counts) {
      for (const auto& entry : counts) ++document_frequency_[entry.first];
    }
  }

  // CIDEr-D of one answer against its reference, x10 as pycocoevalcap reports it.
  double score(const NgramCounts& hyp_counts, const NgramCounts& ref_counts) const {
    constexpr double kSigma = 6;
    const TfIdfVector hyp = vectorise(hyp_counts);
    const TfIdfVector ref = vectorise(ref_counts);
    const double delta = hyp.length - ref.length;
    const double length_penalty = std::exp(-(delta * delta) / (2 * kSigma * kSigma));
    double sum = 0;
    for (size_t n = 0; n < kMaxN; ++n) {
      double dot = 0;
      for (const auto& [ngram, weight] : hyp.weights[n]) {
        const auto it = ref.weights[n].find(ngram);
        if (it != ref.weights[n].end()) dot += std::min(weight, it->second) * it->second;  // clipped
      }
      if (hyp.norms[n] != 0 && ref.norms[n] != 0) dot /= hyp.norms[n] * ref.norms[n];
      sum += dot * length_penalty;
    }
    return sum / kMaxN * 10;
  }

 private:
  TfIdfVector vectorise(const NgramCounts& counts) const {
    TfIdfVector v;
    for (const auto& [ngram, term_frequency] : counts) {
      const auto it = document_frequency_.find(ngram);
      const double df = it == document_frequency_.end() ? 0 : it->second;
      const auto order = static_cast<size_t>(ngram_order(ngram) - 1);
      const double weight = term_frequency * (log_documents_ - std::log(std::max(1.0, df)));
      v.weights[order][ngram] = weight;
      v.norms[order] += weight * weight;
      // pycocoevalcap counts the length in bigrams (its `n == 1` is the 2-gram index); kept so
      // the scores agree.
      if (order == 1) v.length += term_frequency;
    }
    for (double& norm : v.norms) norm = std::sqrt(norm);
    return v;
  }

  double log_documents_;
  std::unordered_map<std::string_view, int> document_frequency_;  // keys point into the ref counts
};

}  // namespace

double rouge_l(std::string_view prediction, std::string_view reference) {
  return rouge_l_tokens(coco_tokens(prediction), coco_tokens(reference));
}

CorpusScores score_corpus(std::span<const std::string> predictions, std::span<const std::string> references,
                          const Meteor* meteor) {
  if (predictions.size() != references.size()) {
    throw Error(ExitCode::kFailure, "language metrics: " + std::to_string(predictions.size()) + " predictions but " +
                                        std::to_string(references.size()) + " references");
  }
  CorpusScores scores;
  scores.count = predictions.size();
  if (predictions.empty()) return scores;

  std::vector<Tokens> hyps, refs;
  hyps.reserve(predictions.size());
  refs.reserve(references.size());
  for (size_t i = 0; i < predictions.size(); ++i) {
    hyps.push_back(coco_tokens(predictions[i]));
    refs.push_back(coco_tokens(references[i]));
  }
  scores.bleu = bleu(hyps, refs);

  std::vector<NgramCounts> hyp_counts, ref_counts;
  hyp_counts.reserve(hyps.size());
  ref_counts.reserve(refs.size());
  double rouge_sum = 0;
  for (size_t i = 0; i < hyps.size(); ++i) {
    rouge_sum += rouge_l_tokens(hyps[i], refs[i]);
    hyp_counts.push_back(count_ngrams(hyps[i]));
    ref_counts.push_back(count_ngrams(refs[i]));
  }
  scores.rouge_l = rouge_sum / static_cast<double>(hyps.size());

  const CiderScorer cider(ref_counts);
  double cider_sum = 0;
  for (size_t i = 0; i < hyps.size(); ++i) cider_sum += cider.score(hyp_counts[i], ref_counts[i]);
  scores.cider = cider_sum / static_cast<double>(hyps.size());

  if (meteor != nullptr) scores.meteor = meteor->corpus(predictions, references);
  return scores;
}

}  // namespace drivevqa
