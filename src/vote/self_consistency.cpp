#include "vote/self_consistency.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "eval/language_metrics.h"
#include "eval/mcq_reader.h"
#include "eval/track1_score.h"
#include "util/error.h"

namespace drivevqa {

std::string closed_read(AnswerKind kind, std::string_view answer) {
  if (kind == AnswerKind::kOption) {
    const auto letter = drivebench_letter(answer);
    return letter ? std::string(1, *letter) : std::string();
  }
  if (kind == AnswerKind::kYesNo) return yes_no_word(answer);
  return "";
}

Vote vote_closed(AnswerKind kind, std::string_view main_answer, std::span<const std::string> samples) {
  Vote v;
  v.answer = std::string(main_answer);
  v.main_read = closed_read(kind, main_answer);
  for (const std::string& s : samples) {
    v.reads.push_back(closed_read(kind, s));
    if (v.reads.back().empty()) continue;
    const auto seen = std::find_if(v.counts.begin(), v.counts.end(), [&](const auto& c) { return c.first == v.reads.back(); });
    if (seen != v.counts.end()) {
      ++seen->second;
    } else {
      v.counts.emplace_back(v.reads.back(), 1);
    }
  }
  std::stable_sort(v.counts.begin(), v.counts.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  v.tie = v.counts.empty() || (v.counts.size() > 1 && v.counts[0].second == v.counts[1].second);
  if (v.tie) return v;
  const std::string& winner = v.counts.front().first;
  if (winner == v.main_read) return v;
  v.overrides = true;
  for (size_t k = 0; k < samples.size(); ++k) {
    if (v.reads[k] == winner) {
      v.answer = samples[k];
      v.chosen = k + 1;
      break;
    }
  }
  return v;
}

Vote pick_by_mbr(std::span<const std::string> samples) {
  if (samples.empty()) throw ModelError("self-consistency got no sampled answer to choose from");
  Vote v;
  const size_t n = samples.size();
  v.agreement.assign(n, 0.0);
  // ROUGE-L's F-measure is symmetric in its two texts only up to beta, so each ordered pair counts.
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < n; ++j) {
      if (i != j) v.agreement[i] += rouge_l(samples[i], samples[j]);
    }
    if (n > 1) v.agreement[i] /= static_cast<double>(n - 1);
  }
  v.chosen = static_cast<size_t>(std::max_element(v.agreement.begin(), v.agreement.end()) - v.agreement.begin());
  v.answer = samples[v.chosen];
  return v;
}

namespace {

// Sample k's seed from its question's: distinct for every (question, k). splitmix64's finalizer.
uint32_t sample_seed(uint32_t question_seed, uint32_t k) {
  uint64_t z = (static_cast<uint64_t>(question_seed) << 32 | k) + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return static_cast<uint32_t>(z ^ (z >> 31));
}

}  // namespace

std::vector<GenerationParams> answers_to_decode(const GenerationParams& main, AnswerKind kind, const SelfConsistency& sc) {
  if (sc.samples < 2) return {main};
  std::vector<GenerationParams> wanted;
  if (kind != AnswerKind::kOpen) wanted.push_back(main);
  for (int k = 1; k <= sc.samples; ++k) {
    GenerationParams sample = main;
    sample.do_sample = true;
    sample.temperature = sc.temperature;
    sample.top_p = sc.top_p;
    sample.seed = sample_seed(main.seed, static_cast<uint32_t>(k));
    wanted.push_back(std::move(sample));
  }
  return wanted;
}

Vote choose_answer(AnswerKind kind, std::span<const std::string> answers) {
  if (kind == AnswerKind::kOpen) return pick_by_mbr(answers);
  if (answers.empty()) throw ModelError("self-consistency got no answer to choose from");
  return vote_closed(kind, answers.front(), answers.subspan(1));
}

std::string vote_json(const Vote& vote, AnswerKind kind) {
  nlohmann::ordered_json j;
  if (kind == AnswerKind::kOpen) {
    j["method"] = "mbr";
    j["chosen"] = vote.chosen;
    std::vector<double> rounded;
    for (double a : vote.agreement) rounded.push_back(std::round(a * 1e4) / 1e4);
    j["agreement"] = rounded;
  } else {
    j["method"] = vote.tie ? "tie" : "majority";
    j["main"] = vote.main_read;
    nlohmann::ordered_json counts = nlohmann::ordered_json::object();
    for (const auto& [value, n] : vote.counts) counts[value] = n;
    j["counts"] = counts;
    j["samples"] = vote.reads;
  }
  return j.dump();
}

}  // namespace drivevqa
