// What `drivevqa eval` shows: a plain-text table, a JSON document and a self-contained HTML page,
// all made from the same Evaluation.
//
// What must hold: a Track 1 score is shown only where every open answer has a judge score;
// otherwise the parts that exist are shown and labelled "without judge", with the number of open
// answers that lack a judge score. Unpaired items are counted and the first kNamedItems of each
// side are named (the JSON lists them all). The HTML page needs nothing from the network and no
// script: inline CSS, an inline SVG bar chart with one <rect> per subtask present (fill
// kBarColour), and every text from the files HTML-escaped.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

#include "eval/ground_truth.h"
#include "eval/track1_score.h"

namespace drivevqa {

inline constexpr size_t kNamedItems = 10;
inline constexpr size_t kWorstAnswers = 20;
inline constexpr std::string_view kBarColour = "#2a7ab9";

struct ReportInput {
  const AnswerFile& ground_truth;
  const AnswerFile& predictions;
  const Pairing& pairing;
  const Evaluation& evaluation;
  std::string judge_url;    // empty: no judge
  std::string judge_model;
};

std::string text_report(const ReportInput& in);
nlohmann::ordered_json json_report(const ReportInput& in);
std::string html_report(const ReportInput& in);

// & < > " ' as entities.
std::string html_escape(std::string_view text);

}  // namespace drivevqa
