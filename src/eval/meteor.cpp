#include "eval/meteor.h"

#include <libstemmer.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <unordered_set>
#include <vector>

#include "eval/text_tokens.h"
#include "eval/wordnet.h"
#include "util/error.h"

namespace drivevqa {
namespace {

// METEOR 1.5's English parameters (the jar's default task "rank").
constexpr double kAlpha = 0.85;  // precision vs recall in Fmean
constexpr double kBeta = 0.2;    // shape of the fragmentation penalty
constexpr double kGamma = 0.6;   // largest fragmentation penalty
constexpr double kDelta = 0.75;  // content words vs function words

enum Module : int { kExact = 0, kStem = 1, kSynonym = 2, kModuleCount = 3 };
constexpr std::array<double, kModuleCount> kModuleWeights{1.0, 0.6, 0.8};

// Partial alignments kept per step of the search (the jar's default beam).
constexpr size_t kBeamWidth = 40;

// Our own list of English function words: articles, prepositions, pronouns, auxiliaries and
// modals, conjunctions and common determiners, plus the clitics coco_tokens() splits off.
constexpr std::string_view kFunctionWords =
    "a an the "
    "about above across after against along among around at before behind below beneath beside between beyond by "
    "despite down during except for from in inside into near of off on onto out outside over past per since through "
    "throughout to toward towards under underneath until up upon via with within without "
    "i me my mine myself you your yours yourself he him his himself she her hers herself it its itself we us our ours "
    "ourselves they them their theirs themselves this that these those who whom whose which what there here "
    "am is are was were be been being do does did have has had having will would shall should can could may might "
    "must ca wo not n't 's 're 'm 've 'll 'd "
    "and or but nor so yet if then than because as although though while whereas unless whether either neither both "
    "some any each every all no such other another own same also just very too when where how why";

std::unordered_set<std::string_view> function_word_set() {
  std::unordered_set<std::string_view> words;
  for (size_t start = 0; start < kFunctionWords.size();) {
    const size_t end = std::min(kFunctionWords.find(' ', start), kFunctionWords.size());
    if (end > start) words.insert(kFunctionWords.substr(start, end - start));
    start = end + 1;
  }
  return words;
}

// Snowball's English (Porter2) stemmer, as the jar uses. Not thread-safe, so each call of
// segment()/corpus() makes its own.
using Stemmer = std::unique_ptr<sb_stemmer, decltype(&sb_stemmer_delete)>;

Stemmer new_stemmer() {
  Stemmer stemmer(sb_stemmer_new("english", nullptr), &sb_stemmer_delete);
  if (!stemmer) throw Error(ExitCode::kFailure, "METEOR: the Snowball English stemmer could not be created");
  return stemmer;
}

std::string stem(const Stemmer& stemmer, const std::string& word) {
  const auto* in = reinterpret_cast<const sb_symbol*>(word.data());
  const sb_symbol* out = sb_stemmer_stem(stemmer.get(), in, static_cast<int>(word.size()));
  if (out == nullptr) return word;  // out of memory inside libstemmer: compare unstemmed
  return {reinterpret_cast<const char*>(out), static_cast<size_t>(sb_stemmer_length(stemmer.get()))};
}

struct Word {
  std::string text, stem;
  std::vector<uint32_t> synsets;
  bool function_word = false;
};

// A possible match of one test word with a reference word.
struct Candidate {
  int partner;  // reference position
  int module;
};

// The sufficient statistics of one pair (or of a whole set, summed), as the jar keeps them.
struct SideCounts {  // one side: the test (prediction) or the reference
  double length = 0, function_words = 0, matches = 0;
  std::array<double, kModuleCount> content_matches{}, function_matches{};  // per module

  void add(const SideCounts& o) {
    length += o.length;
    function_words += o.function_words;
    matches += o.matches;
    for (size_t m = 0; m < kModuleCount; ++m) {
      content_matches[m] += o.content_matches[m];
      function_matches[m] += o.function_matches[m];
    }
  }
  double weighted_length() const { return kDelta * (length - function_words) + (1 - kDelta) * function_words; }
  double weighted_matches() const {
    double sum = 0;
    for (size_t m = 0; m < kModuleCount; ++m) {
      sum += kModuleWeights[m] * (kDelta * content_matches[m] + (1 - kDelta) * function_matches[m]);
    }
    return sum;
  }
};

struct MeteorCounts {
  SideCounts test, reference;
  double chunks = 0;
};

// METEOR 1.5's score from the statistics; 0 where the jar's arithmetic would give NaN.
double meteor_score(const MeteorCounts& c) {
  if (c.test.weighted_length() <= 0 || c.reference.weighted_length() <= 0 || c.test.matches == 0) return 0;
  const double precision = c.test.weighted_matches() / c.test.weighted_length();
  const double recall = c.reference.weighted_matches() / c.reference.weighted_length();
  const double fmean = precision * recall / (kAlpha * precision + (1 - kAlpha) * recall);
  // As the jar: an exact copy in one chunk has no fragmentation at all.
  const bool one_whole_chunk =
      c.test.matches == c.test.length && c.reference.matches == c.reference.length && c.chunks == 1;
  const double fragmentation = one_whole_chunk ? 0 : c.chunks / ((c.test.matches + c.reference.matches) / 2);
  return std::max(fmean * (1 - kGamma * std::pow(fragmentation, kBeta)), 0.0);
}

// ---------------------------------------------------------------------------------------------
// The alignment. Every (test word, reference word) pair is matched by the first module that
// accepts it: exact, else same stem, else a shared synset. The search then gives each word at most
// one partner, ranked as the jar ranks alignments: most matches, then fewest chunks, then (ours)
// the heavier modules, then the smallest total distance between partners. It is a beam search over
// the test words, left to right, where each path either matches the word to a free candidate or
// leaves it unmatched; paths with the same taken reference words and the same last partner have
// the same future, so only the best of them is kept, and kBeamWidth paths survive each step. It
// also runs over the reversed sentences, and the better result is kept, since the two directions
// err on different inputs. Checked against exhaustive search on 7,000 random pairs of up to 8
// words over tiny vocabularies (many repeats; a chain of synonyms): it always found the most
// matches and, among those, the fewest chunks (one direction alone missed the fewest chunks 5 times).

struct AlignmentTotals {
  int matches = 0, chunks = 0, distance = 0;
  double weight = 0;  // module weights of the matches, summed
};

bool ranks_before(const AlignmentTotals& a, const AlignmentTotals& b) {
  if (a.matches != b.matches) return a.matches > b.matches;
  if (a.chunks != b.chunks) return a.chunks < b.chunks;
  if (a.weight != b.weight) return a.weight > b.weight;
  return a.distance < b.distance;
}

// One path of the search. Its matches are a linked list in the search's history.
struct PartialAlignment {
  std::vector<uint64_t> used;  // reference positions taken (bit set)
  int previous = -1;           // partner of the previous test word, or -1
  int last_match = -1;         // index in the history, or -1
  AlignmentTotals totals;
};

// The result: each test word's match (partner -1: unmatched) and the totals.
struct Alignment {
  std::vector<Candidate> match;
  AlignmentTotals totals;
};

class AlignmentSearch {
 public:
  explicit AlignmentSearch(const std::vector<std::vector<Candidate>>& candidates) : candidates_(candidates) {}

  Alignment run(size_t reference_size) {
    std::vector<PartialAlignment> beam(1);
    beam[0].used.assign((reference_size + 63) / 64, 0);
    for (size_t i = 0; i < candidates_.size(); ++i) beam = advance(std::move(beam), i);
    const PartialAlignment& best = *std::min_element(
        beam.begin(), beam.end(), [](const auto& a, const auto& b) { return ranks_before(a.totals, b.totals); });
    Alignment out{std::vector<Candidate>(candidates_.size(), Candidate{-1, kExact}), best.totals};
    for (int node = best.last_match; node >= 0; node = history_[static_cast<size_t>(node)].parent) {
      out.match[history_[static_cast<size_t>(node)].test] = history_[static_cast<size_t>(node)].match;
    }
    return out;
  }

 private:
  struct HistoryNode {
    size_t test;
    Candidate match;
    int parent;  // the previous match of the same path, or -1
  };

  static bool is_taken(const std::vector<uint64_t>& used, int j) {
    return (used[static_cast<size_t>(j) / 64] >> (j % 64)) & 1u;
  }

  std::vector<PartialAlignment> advance(std::vector<PartialAlignment> beam, size_t i) {
    std::vector<PartialAlignment> next;
    for (auto& path : beam) {
      for (const auto& c : candidates_[i]) {
        if (!is_taken(path.used, c.partner)) next.push_back(extend(path, i, c));
      }
      path.previous = -1;  // leave test word i unmatched
      next.push_back(std::move(path));
    }
    std::sort(next.begin(), next.end(), [](const PartialAlignment& a, const PartialAlignment& b) {
      if (a.used != b.used) return a.used < b.used;
      if (a.previous != b.previous) return a.previous < b.previous;
      return ranks_before(a.totals, b.totals);
    });
    const auto same_future = [](const auto& a, const auto& b) { return a.previous == b.previous && a.used == b.used; };
    next.erase(std::unique(next.begin(), next.end(), same_future), next.end());
    if (next.size() > kBeamWidth) {
      std::partial_sort(next.begin(), next.begin() + kBeamWidth, next.end(),
                        [](const auto& a, const auto& b) { return ranks_before(a.totals, b.totals); });
      next.resize(kBeamWidth);
    }
    return next;
  }

  PartialAlignment extend(const PartialAlignment& path, size_t i, const Candidate& c) {
    PartialAlignment grown = path;
    const auto j = static_cast<size_t>(c.partner);
    grown.used[j / 64] |= uint64_t{1} << (j % 64);
    if (path.previous < 0 || c.partner != path.previous + 1) ++grown.totals.chunks;
    grown.previous = c.partner;
    history_.push_back({i, c, path.last_match});
    grown.last_match = static_cast<int>(history_.size() - 1);
    ++grown.totals.matches;
    grown.totals.weight += kModuleWeights[static_cast<size_t>(c.module)];
    grown.totals.distance += std::abs(static_cast<int>(i) - c.partner);
    return grown;
  }

  const std::vector<std::vector<Candidate>>& candidates_;
  std::vector<HistoryNode> history_;  // every match any path made
};

Alignment best_alignment(const std::vector<std::vector<Candidate>>& candidates, size_t reference_size) {
  Alignment forward = AlignmentSearch(candidates).run(reference_size);
  const size_t n = candidates.size();
  const int last_reference = static_cast<int>(reference_size) - 1;
  std::vector<std::vector<Candidate>> reversed(n);
  for (size_t i = 0; i < n; ++i) {
    for (const auto& c : candidates[i]) reversed[n - 1 - i].push_back({last_reference - c.partner, c.module});
  }
  Alignment backward = AlignmentSearch(reversed).run(reference_size);
  std::reverse(backward.match.begin(), backward.match.end());
  backward.totals.distance = 0;  // chunks, matches and weight do not depend on the direction; distance does
  for (size_t i = 0; i < n; ++i) {
    auto& partner = backward.match[i].partner;
    if (partner < 0) continue;
    partner = last_reference - partner;
    backward.totals.distance += std::abs(static_cast<int>(i) - partner);
  }
  return ranks_before(backward.totals, forward.totals) ? backward : forward;
}

bool share_synset(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
  auto i = a.begin();
  auto j = b.begin();
  while (i != a.end() && j != b.end()) {
    if (*i == *j) return true;
    *i < *j ? ++i : ++j;
  }
  return false;
}

// The first module that matches the two words, or -1.
int match_module(const Word& test, const Word& reference, bool exact_only) {
  if (test.text == reference.text) return kExact;
  if (exact_only) return -1;
  if (test.stem == reference.stem) return kStem;
  return share_synset(test.synsets, reference.synsets) ? kSynonym : -1;
}

}  // namespace

struct Meteor::Impl {
  explicit Impl(const std::filesystem::path& dir) : wordnet(dir), function_words(function_word_set()) {}

  std::vector<Word> words(std::string_view text, const Stemmer& stemmer) const {
    std::vector<Word> out;
    for (auto& token : coco_tokens(text)) {
      out.push_back({token, stem(stemmer, token), wordnet.synsets(token), function_words.contains(token)});
    }
    return out;
  }

  static std::vector<std::vector<Candidate>> candidates(const std::vector<Word>& test,
                                                        const std::vector<Word>& reference) {
    // As the jar: identical sentences are matched exactly only, so the search cannot go astray.
    const bool identical = std::equal(test.begin(), test.end(), reference.begin(), reference.end(),
                                      [](const Word& a, const Word& b) { return a.text == b.text; });
    std::vector<std::vector<Candidate>> out(test.size());
    for (size_t i = 0; i < test.size(); ++i) {
      for (size_t j = 0; j < reference.size(); ++j) {
        const int module = match_module(test[i], reference[j], identical);
        if (module >= 0) out[i].push_back({static_cast<int>(j), module});
      }
    }
    return out;
  }

  MeteorCounts counts(std::string_view prediction, std::string_view reference_text, const Stemmer& stemmer) const {
    const std::vector<Word> test = words(prediction, stemmer);
    const std::vector<Word> reference = words(reference_text, stemmer);
    MeteorCounts c;
    const auto count_words = [](SideCounts& side, const std::vector<Word>& sentence) {
      side.length = static_cast<double>(sentence.size());
      for (const auto& w : sentence) side.function_words += w.function_word ? 1 : 0;
    };
    count_words(c.test, test);
    count_words(c.reference, reference);
    const auto count_match = [](SideCounts& side, const Word& word, int module) {
      (word.function_word ? side.function_matches : side.content_matches)[static_cast<size_t>(module)] += 1;
      side.matches += 1;
    };
    const Alignment best = best_alignment(candidates(test, reference), reference.size());
    for (size_t i = 0; i < test.size(); ++i) {
      const auto [j, module] = best.match[i];
      if (j < 0) continue;
      count_match(c.test, test[i], module);
      count_match(c.reference, reference[static_cast<size_t>(j)], module);
    }
    c.chunks = best.totals.chunks;
    return c;
  }

  WordNet wordnet;
  std::unordered_set<std::string_view> function_words;
};

std::unique_ptr<Meteor> Meteor::load(const std::filesystem::path& wordnet_dir) {
  return std::unique_ptr<Meteor>(new Meteor(std::make_unique<Impl>(wordnet_dir)));
}

Meteor::Meteor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Meteor::~Meteor() = default;

double Meteor::segment(std::string_view prediction, std::string_view reference) const {
  return meteor_score(impl_->counts(prediction, reference, new_stemmer()));
}

double Meteor::corpus(std::span<const std::string> predictions, std::span<const std::string> references) const {
  if (predictions.size() != references.size()) {
    throw Error(ExitCode::kFailure, "METEOR: " + std::to_string(predictions.size()) + " predictions but " +
                                        std::to_string(references.size()) + " references");
  }
  const Stemmer stemmer = new_stemmer();
  MeteorCounts total;
  for (size_t i = 0; i < predictions.size(); ++i) {
    const MeteorCounts pair = impl_->counts(predictions[i], references[i], stemmer);
    total.test.add(pair.test);
    total.reference.add(pair.reference);
    total.chunks += pair.chunks;
  }
  return meteor_score(total);
}

}  // namespace drivevqa
