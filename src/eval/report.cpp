#include "eval/report.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <numeric>

namespace drivevqa {
namespace {

using OrderedJson = nlohmann::ordered_json;

std::string strf(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string strf(const char* format, ...) {
  va_list args, again;
  va_start(args, format);
  va_copy(again, args);
  const int n = std::vsnprintf(nullptr, 0, format, args);
  va_end(args);
  std::string out(n > 0 ? static_cast<size_t>(n) : 0, '\0');
  if (n > 0) std::vsnprintf(out.data(), out.size() + 1, format, again);
  va_end(again);
  return out;
}

std::string percent(std::optional<double> share) { return share ? strf("%.1f%%", 100.0 * *share) : "-"; }
std::string fixed3(double v, bool present) { return present ? strf("%.3f", v) : "-"; }
std::string points(std::optional<double> v) { return v ? strf("%.2f", *v) : "n/a"; }

OrderedJson optional_number(std::optional<double> v) { return v ? OrderedJson(*v) : OrderedJson(nullptr); }

std::string letter(char c) { return c ? std::string(1, c) : std::string(); }

const char* kJudgeAbsentNote =
    "No judge was given: the 0.8 x judge term of open answers is absent, so no Track 1 score is computed; "
    "the parts shown are the closed answers' points and the open answers' 0.1 ROUGE-L + 0.1 METEOR points "
    "(\"without judge\").";

std::string unpaired_lines(const std::vector<UnpairedItem>& list, const AnswerFile& file, const char* what) {
  if (list.empty()) return "";
  std::string out = strf("%zu %s:\n", list.size(), what);
  for (size_t i = 0; i < list.size() && i < kNamedItems; ++i) {
    out += "  " + describe_item(file.items[list[i].index]) + "  (" + list[i].reason + ")\n";
  }
  if (list.size() > kNamedItems) out += strf("  ... and %zu more (all in --json)\n", list.size() - kNamedItems);
  return out;
}

std::string subtask_table(const Evaluation& ev) {
  std::string out = strf("%-36s %5s %6s %5s %8s %8s %7s %7s %7s %7s %7s %6s\n", "subtask", "n", "closed", "open",
                         "acc(DB)", "acc(str)", "misread", "BLEU-4", "ROUGE-L", "CIDEr", "METEOR", "judge");
  for (const SubtaskSummary& s : ev.subtasks) {
    const bool lang = s.open_count > 0;
    const auto judge = s.judge_mean();
    out += strf("%-36s %5zu %6zu %5zu %8s %8s %7s %7s %7s %7s %7s %6s\n", std::string(subtask_name(s.subtask)).c_str(),
                s.count, s.closed_count(), s.open_count, percent(s.accuracy()).c_str(),
                percent(s.accuracy_strict()).c_str(), s.option_count ? std::to_string(s.misread_risk).c_str() : "-",
                fixed3(s.language.bleu[3], lang).c_str(), fixed3(s.language.rouge_l, lang).c_str(),
                fixed3(s.language.cider, lang).c_str(), fixed3(s.language.meteor, lang).c_str(),
                judge ? strf("%.1f", *judge).c_str() : "-");
  }
  return out;
}

std::string track1_table(const Evaluation& ev) {
  std::string out = strf("%-12s %5s %6s %5s %11s %14s %13s %10s %8s\n", "category", "n", "closed", "open", "closed part",
                         "0.1R+0.1M part", "without judge", "judge part", "score");
  const auto row = [&](const std::string& name, const Track1Parts& p) {
    const auto score = ev.judge_used ? p.score() : std::nullopt;
    out += strf("%-12s %5zu %6zu %5zu %11.2f %14.2f %13.2f %10s %8s\n", name.c_str(), p.questions, p.closed, p.open,
                p.closed_points_share(), p.lexical_points_share(), p.without_judge(),
                score ? strf("%.2f", p.judge_points / p.questions).c_str() : "-", points(score).c_str());
  };
  for (const auto& [name, parts] : ev.categories) row(name, parts);
  row("overall", ev.overall);
  return out;
}

}  // namespace

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string text_report(const ReportInput& in) {
  const Evaluation& ev = in.evaluation;
  std::string out = "drivevqa eval: " + in.predictions.name + " against " + in.ground_truth.name + "\n";
  out += strf("paired %zu of %zu ground-truth questions (%zu predictions read)\n", in.pairing.pairs.size(),
              in.ground_truth.items.size(), in.predictions.items.size());
  out += unpaired_lines(in.pairing.missing_predictions, in.ground_truth,
                        "ground-truth questions without a prediction (not scored)");
  out += unpaired_lines(in.pairing.extra_predictions, in.predictions, "predictions without a ground-truth question");
  if (ev.error_answers) out += strf("%zu paired answers are drivevqa error answers (scored as given)\n", ev.error_answers);
  out += '\n';  // (not "\n" + string: GCC 12 warns falsely on that form, -Wrestrict)
  out += subtask_table(ev);
  out += "acc: closed answers (options by DriveBench's reader / the strict reader; yes/no by the first word); "
         "misread: options the two readers read differently\n";
  out += "\nTrack 1 points per question (0..100): closed 100/0, open 10 ROUGE-L + 10 METEOR + 0.8 judge\n";
  out += track1_table(ev);
  const Track1Parts& all = ev.overall;
  if (!ev.judge_used) {
    out += strf("%s\nwithout judge (closed part + 0.1R+0.1M part), overall: %.2f; %zu open answers lack a judge score\n",
                kJudgeAbsentNote, all.without_judge(), all.open_without_judge());
  } else {
    out += strf("judge %s: %zu requests, %zu from cache, %zu asked twice, %zu without a score\n", in.judge_model.c_str(),
                ev.judge_stats.sent, ev.judge_stats.cached, ev.judge_stats.retried, ev.judge_stats.missing);
    if (const auto score = all.score()) {
      out += strf("Track 1 score (phase 2 formula): %.2f\n", *score);
    } else {
      out += strf("Track 1 score: n/a: %zu open answers lack a judge score; over the %zu questions with every part: %s; "
                  "without judge: %.2f\n",
                  all.open_without_judge(), all.closed + all.judged, points(all.score_of_complete()).c_str(),
                  all.without_judge());
    }
  }
  if (!in.pairing.missing_predictions.empty()) {
    out += strf("scores are over the %zu paired questions; the leaderboard would count the %zu missing ones as 0\n",
                in.pairing.pairs.size(), in.pairing.missing_predictions.size());
  }
  return out;
}

namespace {

OrderedJson parts_json(const Track1Parts& p, bool judge_used) {
  OrderedJson j;
  j["questions"] = p.questions;
  j["closed"] = p.closed;
  j["closed_correct"] = p.closed_correct;
  j["open"] = p.open;
  j["open_judged"] = p.judged;
  j["open_without_judge"] = p.open_without_judge();
  j["closed_part"] = p.closed_points_share();
  j["rouge_meteor_part"] = p.lexical_points_share();
  const auto score = judge_used ? p.score() : std::nullopt;
  j["judge_part"] = score ? OrderedJson(p.judge_points / p.questions) : OrderedJson(nullptr);
  j["score"] = optional_number(score);
  j["score_without_judge"] = p.without_judge();
  j["score_of_complete_questions"] = optional_number(judge_used ? p.score_of_complete() : std::nullopt);
  return j;
}

OrderedJson unpaired_json(const std::vector<UnpairedItem>& list, const AnswerFile& file) {
  OrderedJson items = OrderedJson::array();
  for (const UnpairedItem& u : list) {
    const EvalItem& e = file.items[u.index];
    items.push_back({{"index", e.index}, {"where", e.where}, {"question", e.question}, {"reason", u.reason}});
  }
  return {{"count", list.size()}, {"items", std::move(items)}};
}

OrderedJson subtask_json(const SubtaskSummary& s, bool judge_used) {
  OrderedJson j;
  j["subtask"] = std::string(subtask_name(s.subtask));
  j["count"] = s.count;
  j["accuracy_drivebench"] = optional_number(s.accuracy());
  j["accuracy_strict"] = optional_number(s.accuracy_strict());
  j["option"] = {{"count", s.option_count}, {"correct_drivebench", s.option_correct},
                 {"correct_strict", s.option_correct_strict}, {"misread_risk", s.misread_risk}};
  j["yes_no"] = {{"count", s.yes_no_count}, {"correct", s.yes_no_correct}};
  OrderedJson open = {{"count", s.open_count}};
  if (s.open_count > 0) {
    open["bleu"] = s.language.bleu;
    open["rouge_l"] = s.language.rouge_l;
    open["cider"] = s.language.cider;
    open["meteor"] = s.language.meteor;
  }
  open["judged"] = s.judged;
  open["judge_mean"] = optional_number(s.judge_mean());
  j["open"] = std::move(open);
  j["track1"] = parts_json(s.track1, judge_used);
  return j;
}

OrderedJson question_json(const QuestionScore& q) {
  OrderedJson j;
  j["ground_truth_index"] = q.ground_truth_index;
  j["prediction_index"] = q.prediction_index;
  j["category"] = q.category;
  j["subtask"] = std::string(subtask_name(q.subtask));
  j["shape"] = std::string(answer_kind_name(q.kind));
  j["question"] = q.question;
  j["answer"] = q.answer;
  j["reference"] = q.reference;
  if (q.kind == AnswerKind::kOption) {
    j["letter_drivebench"] = letter(q.answer_letter_drivebench);
    j["reference_letter_drivebench"] = letter(q.reference_letter_drivebench);
    j["letter_strict"] = letter(q.answer_letter_strict);
    j["reference_letter_strict"] = letter(q.reference_letter_strict);
    j["misread_risk"] = q.misread_risk;
  }
  if (q.closed()) {
    j["correct"] = q.correct;
    j["correct_strict"] = q.correct_strict;
  } else {
    j["rouge_l"] = q.rouge_l;
    j["meteor"] = q.meteor;
    j["judge"] = optional_number(q.judge);
  }
  j["points"] = optional_number(q.points());
  j["points_without_judge"] = q.points_without_judge();
  return j;
}

}  // namespace

OrderedJson json_report(const ReportInput& in) {
  const Evaluation& ev = in.evaluation;
  OrderedJson j;
  j["ground_truth"] = {{"file", in.ground_truth.name}, {"items", in.ground_truth.items.size()}};
  j["predictions"] = {{"file", in.predictions.name}, {"items", in.predictions.items.size()}};
  j["pairing"] = {{"paired", in.pairing.pairs.size()},
                  {"missing_predictions", unpaired_json(in.pairing.missing_predictions, in.ground_truth)},
                  {"extra_predictions", unpaired_json(in.pairing.extra_predictions, in.predictions)}};
  j["error_answers"] = ev.error_answers;
  j["misread_risk"] = ev.misread_risk;
  OrderedJson judge = {{"used", ev.judge_used}};
  if (ev.judge_used) {
    judge["url"] = in.judge_url;
    judge["model"] = in.judge_model;
    judge["requests"] = ev.judge_stats.sent;
    judge["cached"] = ev.judge_stats.cached;
    judge["retried"] = ev.judge_stats.retried;
    judge["missing"] = ev.judge_stats.missing;
  }
  j["judge"] = std::move(judge);
  j["subtasks"] = OrderedJson::array();
  for (const SubtaskSummary& s : ev.subtasks) j["subtasks"].push_back(subtask_json(s, ev.judge_used));
  OrderedJson track1;
  track1["formula"] = "per question, 0..100: closed 100 if correct else 0; open 10 ROUGE-L + 10 METEOR + 0.8 judge";
  track1["judge_included"] = ev.judge_used;
  if (!ev.judge_used) track1["note"] = kJudgeAbsentNote;
  OrderedJson categories = OrderedJson::object();
  for (const auto& [name, parts] : ev.categories) categories[name] = parts_json(parts, ev.judge_used);
  track1["categories"] = std::move(categories);
  track1["overall"] = parts_json(ev.overall, ev.judge_used);
  const double coverage =
      in.ground_truth.items.empty() ? 0.0 : static_cast<double>(in.pairing.pairs.size()) / in.ground_truth.items.size();
  const auto overall = ev.judge_used ? ev.overall.score() : std::nullopt;
  track1["missing_as_zero"] = {{"score", overall ? OrderedJson(*overall * coverage) : OrderedJson(nullptr)},
                               {"score_without_judge", ev.overall.without_judge() * coverage}};
  j["track1"] = std::move(track1);
  j["questions"] = OrderedJson::array();
  for (const QuestionScore& q : ev.questions) j["questions"].push_back(question_json(q));
  return j;
}

namespace {

// Track 1 points of a subtask for its bar: the full score where it exists, else without judge.
std::pair<double, bool> bar_value(const SubtaskSummary& s, bool judge_used) {
  if (const auto score = judge_used ? s.track1.score() : std::nullopt) return {*score, true};
  if (s.track1.open == 0) return {s.track1.closed_points_share(), true};  // closed only: nothing is missing
  return {s.track1.without_judge(), false};
}

std::string svg_chart(const Evaluation& ev) {
  constexpr int kLabelWidth = 310, kBarArea = 560, kRow = 30, kTop = 24;
  const int height = kTop + kRow * static_cast<int>(ev.subtasks.size()) + 12;
  std::string out = strf("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" role=\"img\" "
                         "aria-label=\"Track 1 points per subtask\">\n",
                         kLabelWidth + kBarArea + 200, height);
  out += strf("<text x=\"%d\" y=\"14\" class=\"axis\">0</text><text x=\"%d\" y=\"14\" class=\"axis\">50</text>"
              "<text x=\"%d\" y=\"14\" class=\"axis\">100</text>\n",
              kLabelWidth, kLabelWidth + kBarArea / 2 - 8, kLabelWidth + kBarArea - 20);
  out += strf("<line x1=\"%d\" y1=\"18\" x2=\"%d\" y2=\"%d\" stroke=\"#888\"/>\n", kLabelWidth, kLabelWidth, height - 8);
  for (size_t i = 0; i < ev.subtasks.size(); ++i) {
    const SubtaskSummary& s = ev.subtasks[i];
    const auto [value, full] = bar_value(s, ev.judge_used);
    const int y = kTop + kRow * static_cast<int>(i);
    // A stub of 3 px keeps a zero bar visible (and countable in a screenshot).
    const int width = std::max(3, static_cast<int>(kBarArea * std::clamp(value, 0.0, 100.0) / 100.0 + 0.5));
    out += strf("<text x=\"%d\" y=\"%d\" text-anchor=\"end\" class=\"label\">%s (%zu)</text>\n", kLabelWidth - 8, y + 16,
                std::string(subtask_name(s.subtask)).c_str(), s.count);
    out += strf("<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"20\" fill=\"%s\"><title>%s: %.2f</title></rect>\n",
                kLabelWidth, y + 2, width, std::string(kBarColour).c_str(), std::string(subtask_name(s.subtask)).c_str(),
                value);
    out += strf("<text x=\"%d\" y=\"%d\" class=\"value\">%.1f%s</text>\n", kLabelWidth + width + 6, y + 16, value,
                full ? "" : " without judge");
  }
  return out + "</svg>\n";
}

std::string html_track1_table(const Evaluation& ev) {
  std::string out = "<table><tr><th>category</th><th>questions</th><th>closed part</th><th>0.1R+0.1M part</th>"
                    "<th>without judge</th><th>judge part</th><th>score</th></tr>\n";
  const auto row = [&](const std::string& name, const Track1Parts& p) {
    const auto score = ev.judge_used ? p.score() : std::nullopt;
    out += strf("<tr><td>%s</td><td>%zu</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%s</td><td>%s</td></tr>\n",
                html_escape(name).c_str(), p.questions, p.closed_points_share(), p.lexical_points_share(), p.without_judge(),
                score ? strf("%.2f", p.judge_points / p.questions).c_str() : "-", points(score).c_str());
  };
  for (const auto& [name, parts] : ev.categories) row(name, parts);
  row("overall", ev.overall);
  return out + "</table>\n";
}

std::string html_subtask_table(const Evaluation& ev) {
  std::string out = "<table><tr><th>subtask</th><th>n</th><th>acc (DriveBench)</th><th>acc (strict)</th>"
                    "<th>misread risk</th><th>BLEU-4</th><th>ROUGE-L</th><th>CIDEr</th><th>METEOR</th><th>judge</th></tr>\n";
  for (const SubtaskSummary& s : ev.subtasks) {
    const bool lang = s.open_count > 0;
    const auto judge = s.judge_mean();
    out += strf("<tr><td>%s</td><td>%zu</td><td>%s</td><td>%s</td><td>%s</td>", std::string(subtask_name(s.subtask)).c_str(),
                s.count, percent(s.accuracy()).c_str(), percent(s.accuracy_strict()).c_str(),
                s.option_count ? std::to_string(s.misread_risk).c_str() : "-");
    out += strf("<td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n", fixed3(s.language.bleu[3], lang).c_str(),
                fixed3(s.language.rouge_l, lang).c_str(), fixed3(s.language.cider, lang).c_str(),
                fixed3(s.language.meteor, lang).c_str(), judge ? strf("%.1f", *judge).c_str() : "-");
  }
  return out + "</table>\n";
}

std::string html_worst(const Evaluation& ev) {
  std::vector<size_t> order(ev.questions.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return ev.questions[a].attained() < ev.questions[b].attained(); });
  order.resize(std::min(order.size(), kWorstAnswers));
  std::string out = strf("<h2>The %zu lowest-scoring answers</h2>\n<table class=\"answers\"><tr><th>#</th><th>subtask</th>"
                         "<th>points</th><th>question</th><th>answer</th><th>ground truth</th></tr>\n", order.size());
  for (size_t i : order) {
    const QuestionScore& q = ev.questions[i];
    const auto p = q.points();
    out += strf("<tr><td>%zu</td><td>%s</td><td>%s</td>", q.ground_truth_index, std::string(subtask_name(q.subtask)).c_str(),
                p ? strf("%.1f", *p).c_str() : strf("%.1f of 20 (without judge)", q.points_without_judge()).c_str());
    out += "<td>" + html_escape(q.question) + "</td><td>" + html_escape(q.answer) + "</td><td>" +
           html_escape(q.reference) + "</td></tr>\n";
  }
  return out + "</table>\n";
}

std::string html_unpaired(const std::vector<UnpairedItem>& list, const AnswerFile& file, const char* what) {
  if (list.empty()) return "";
  std::string out = strf("<p>%zu %s:</p>\n<ul>\n", list.size(), what);
  for (size_t i = 0; i < list.size() && i < kNamedItems; ++i) {
    out += "<li>" + html_escape(describe_item(file.items[list[i].index])) + " (" + html_escape(list[i].reason) + ")</li>\n";
  }
  if (list.size() > kNamedItems) out += strf("<li>... and %zu more</li>\n", list.size() - kNamedItems);
  return out + "</ul>\n";
}

const char* kStyle =
    "body{font-family:sans-serif;margin:24px;color:#222;max-width:1150px}"
    "table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;"
    "vertical-align:top}th{background:#f0f0f0}td:first-child{text-align:left}"
    ".answers td,.answers th{text-align:left}.answers td{font-size:13px;max-width:330px;overflow-wrap:anywhere}"
    ".score{font-size:28px;font-weight:bold}.note{color:#555}svg text{font-size:13px}.axis{fill:#888}";

}  // namespace

std::string html_report(const ReportInput& in) {
  const Evaluation& ev = in.evaluation;
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>drivevqa eval</title>"
                    "<style>" + std::string(kStyle) + "</style></head><body>\n<h1>drivevqa eval</h1>\n";
  out += "<p>" + html_escape(in.predictions.name) + " against " + html_escape(in.ground_truth.name) +
         strf(": %zu of %zu ground-truth questions paired.</p>\n", in.pairing.pairs.size(), in.ground_truth.items.size());
  const Track1Parts& all = ev.overall;
  if (const auto score = ev.judge_used ? all.score() : std::nullopt) {
    out += strf("<p class=\"score\">Track 1 score: %.2f</p>\n", *score);
  } else {
    out += strf("<p class=\"score\">Without judge: %.2f</p>\n<p class=\"note\">", all.without_judge());
    out += ev.judge_used ? strf("%zu open answers lack a judge score, so no full Track 1 score.", all.open_without_judge())
                         : html_escape(kJudgeAbsentNote) + strf(" %zu open answers lack a judge score.", all.open_without_judge());
    out += "</p>\n";
  }
  out += html_unpaired(in.pairing.missing_predictions, in.ground_truth, "ground-truth questions without a prediction (not scored)");
  out += html_unpaired(in.pairing.extra_predictions, in.predictions, "predictions without a ground-truth question");
  out += "<h2>Track 1 points per subtask</h2>\n";
  out += svg_chart(ev);
  out += "<h2>Per category</h2>\n";
  out += html_track1_table(ev);
  out += "<h2>Per subtask</h2>\n";
  out += html_subtask_table(ev);
  out += html_worst(ev);
  return out + "</body></html>\n";
}

}  // namespace drivevqa
