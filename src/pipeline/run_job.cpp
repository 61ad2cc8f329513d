#include "pipeline/run_job.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include <sys/resource.h>

#include <cstdio>
#include <optional>

#include "engine/model.h"
#include "pipeline/progress.h"
#include "results/results_file.h"
#include "util/error.h"
#include "util/atomic_file.h"
#include "util/files.h"
#include "util/interrupt.h"

namespace drivevqa {

std::filesystem::path journal_path_for(const std::filesystem::path& output_file) {
  return output_file.string() + ".journal";
}

double peak_rss_megabytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // kilobytes on Linux
}

RunSummary run_job(const RunJob& job, Runner& runner) {
  require_writable_file_path(job.output_file, "");  // before any work
  Journal journal(journal_path_for(job.output_file), job.journal_key, job.overwrite_journal);
  set_engine_abort_note("the answers finished so far are kept in " + journal.path().string() +
                        "; the same command goes on from there");
  RunSummary summary;
  summary.items = job.items.size();
  std::vector<std::optional<ItemResult>> results(job.items.size());
  std::map<size_t, size_t> position_of;  // item index -> position in job.items
  std::vector<const QuestionItem*> todo, answered;
  for (size_t i = 0; i < job.items.size(); ++i) {
    const QuestionItem& item = job.items[i];
    position_of[item.index] = i;
    if (const ItemResult* known = journal.find(item)) {
      results[i] = *known;
      ++summary.from_journal;
      answered.push_back(&item);
    } else {
      // An entry for this position that names another item (a hand-edited journal) is not reused.
      if (journal.entries().count(item.index) > 0) ++summary.journal_mismatches;
      todo.push_back(&item);
    }
  }
  // A frame the journal holds in part is decoded whole again, in input order (runner.h).
  std::vector<const QuestionItem*> work = runner.frame_mates(todo, answered);
  work.insert(work.end(), todo.begin(), todo.end());
  std::sort(work.begin(), work.end(), [](const QuestionItem* a, const QuestionItem* b) { return a->index < b->index; });
  Progress progress(job.items.size(), summary.from_journal);
  const auto write_output = [&](bool complete) {
    std::vector<nlohmann::ordered_json> output;
    output.reserve(job.items.size());
    for (size_t i = 0; i < job.items.size(); ++i) {
      if (!results[i]) {
        if (complete) throw Error(ExitCode::kFailure, "internal error: item " + std::to_string(job.items[i].index) + " got no result");
        continue;  // an interrupted run: only what was answered
      }
      output.push_back(result_json(job.items[i], *results[i]));
    }
    write_results(job.output_file, output);
  };
  try {
    runner.answer_all(work, [&](const QuestionItem& item, ItemResult result) {
      if (const ItemResult* known = journal.find(item)) {
        // Decoded again only to keep its frame's batches; the journaled answer stands.
        ++summary.replayed;
        if (known->answer != result.answer) ++summary.replay_mismatches;
        return;
      }
      journal.append(item, result);
      ++summary.answered_now;
      if (job.print_answers) {
        progress.finish();
        std::printf("[%zu/%zu] %s -> %s\nQ: %s\nA: %s\n\n", item.index + 1, job.items.size(),
                    std::string(subtask_name(result.subtask)).c_str(), result.model_used.c_str(), item.question.c_str(),
                    result.answer.c_str());
        std::fflush(stdout);
      }
      progress.item_done(result.model_used);
      results[position_of.at(item.index)] = std::move(result);
    });
  } catch (const Interrupted&) {
    progress.finish();
    write_output(false);
    throw Error(ExitCode::kInterrupted, "interrupted: " + std::to_string(summary.answered_now + summary.from_journal) + " of " +
                                            std::to_string(job.items.size()) + " items answered and journaled, written to " +
                                            job.output_file.string() + "; run the same command again to answer the rest");
  }
  progress.finish();
  for (const auto& r : results) {
    if (!r) continue;
    summary.errors += r->is_error ? 1 : 0;
    ++summary.per_subtask_model[std::string(subtask_name(r->subtask)) + " / " + r->model_used];
  }
  write_output(true);
  summary.seconds = progress.elapsed_seconds();
  summary.counters = runner.counters();
  summary.peak_rss_mb = peak_rss_megabytes();
  return summary;
}

nlohmann::ordered_json stats_json(const RunSummary& s) {
  const RunCounters& c = s.counters;
  nlohmann::ordered_json j;
  j["items"] = s.items;
  j["answered_now"] = s.answered_now;
  j["from_journal"] = s.from_journal;
  j["replayed"] = s.replayed;
  j["replay_mismatches"] = s.replay_mismatches;
  j["journal_mismatches"] = s.journal_mismatches;
  j["errors"] = s.errors;
  j["seconds"] = s.seconds;
  j["questions_per_second"] = s.answered_now / std::max(s.seconds, 1e-9);
  j["frames"] = c.frames;
  j["images_decoded"] = c.images_decoded;
  j["images_encoded"] = c.images_encoded;
  j["prefix_evaluations"] = c.prefix_evaluations;
  j["prefix_tokens"] = c.prefix_tokens;
  j["suffix_tokens"] = c.suffix_tokens;
  j["close_ups"] = c.close_ups;
  j["close_up_tokens"] = c.close_up_tokens;
  j["marked_images"] = c.marked_images;
  j["marker_sets"] = c.marker_sets;
  j["generated_tokens"] = c.generated_tokens;
  j["max_parallel"] = c.max_parallel;
  j["decode_calls"] = c.decode_calls;
  j["forked_answers"] = c.forked_answers;
  j["voted_questions"] = c.voted_questions;
  j["vote_ties"] = c.vote_ties;
  j["vote_overrides"] = c.vote_overrides;
  j["kb_answers"] = c.kb_answers;
  j["few_shot_examples"] = c.few_shot_examples;
  j["few_shot_short"] = c.few_shot_short;
  j["stage_seconds"] = {{"decode_images", c.seconds.decode_images},
                        {"encode_images", c.seconds.encode_images},
                        {"prefixes", c.seconds.prefixes},
                        {"questions", c.seconds.questions},
                        {"grammar", c.seconds.grammar}};
  j["peak_rss_mb"] = s.peak_rss_mb;
  j["per_subtask_model"] = s.per_subtask_model;
  return j;
}

std::string describe(const RunSummary& s) {
  std::string text;
  char line[256];
  std::snprintf(line, sizeof line, "%zu items: %zu answered now, %zu from the journal, %zu errors; %s, %.2f questions/s\n",
                s.items, s.answered_now, s.from_journal, s.errors, format_duration(s.seconds).c_str(),
                s.answered_now / std::max(s.seconds, 1e-9));
  text += line;
  for (const auto& [key, count] : s.per_subtask_model) {
    std::snprintf(line, sizeof line, "  %-50s %zu\n", key.c_str(), count);
    text += line;
  }
  if (s.journal_mismatches > 0) {
    std::snprintf(line, sizeof line, "  journal entries ignored because they name another item: %zu\n", s.journal_mismatches);
    text += line;
  }
  if (s.replayed > 0) {
    std::snprintf(line, sizeof line,
                  "  journaled items decoded again to keep their frames' batches: %zu (%zu came out different)\n",
                  s.replayed, s.replay_mismatches);
    text += line;
  }
  const RunCounters& c = s.counters;
  std::snprintf(line, sizeof line,
                "frames %zu; images decoded %zu, encoded %zu; shared prefixes evaluated %zu (%zu tokens); "
                "question tokens evaluated %zu; generated tokens %zu (up to %zu answers at once); "
                "answered from the knowledge base %zu\n",
                c.frames, c.images_decoded, c.images_encoded, c.prefix_evaluations, c.prefix_tokens, c.suffix_tokens,
                c.generated_tokens, c.max_parallel, c.kb_answers);
  text += line;
  if (c.close_ups > 0) {
    std::snprintf(line, sizeof line, "object close-ups %zu (%zu of the question tokens)\n", c.close_ups, c.close_up_tokens);
    text += line;
  }
  if (c.few_shot_examples > 0 || c.few_shot_short > 0) {
    std::snprintf(line, sizeof line, "knowledge-base examples shown %zu (%zu questions got fewer than asked)\n",
                  c.few_shot_examples, c.few_shot_short);
    text += line;
  }
  if (c.voted_questions > 0) {
    std::snprintf(line, sizeof line,
                  "self-consistency: %zu questions voted (%zu ties kept the main answer, %zu changed it); "
                  "%zu samples forked a question's evaluated suffix\n",
                  c.voted_questions, c.vote_ties, c.vote_overrides, c.forked_answers);
    text += line;
  }
  if (c.marker_sets > 0) {
    // Each marker set is a frame of its own: its prefix (and its marked images) are not shared.
    std::snprintf(line, sizeof line, "markers drawn on %zu camera images, in %zu marker sets (each its own prefix)\n",
                  c.marked_images, c.marker_sets);
    text += line;
  }
  std::snprintf(line, sizeof line,
                "seconds: decoding images %.1f, encoding images %.1f, prefixes %.1f, questions %.1f (answer grammars %.2f); "
                "peak memory %.0f MB",
                c.seconds.decode_images, c.seconds.encode_images, c.seconds.prefixes, c.seconds.questions, c.seconds.grammar,
                s.peak_rss_mb);
  text += line;
  return text;
}

}  // namespace drivevqa
