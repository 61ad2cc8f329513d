#include "pipeline/run_job.h"

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <cstdio>

#include "pipeline/progress.h"
#include "results/results_file.h"
#include "util/error.h"

namespace drivevqa {

std::filesystem::path journal_path_for(const std::filesystem::path& output_file) {
  return output_file.string() + ".journal";
}

// Fails before any work when the results file could never be written.
void check_output_path(const std::filesystem::path& output) {
  std::error_code ec;
  if (std::filesystem::is_directory(output, ec)) throw OutputError(output.string() + ": is a directory, not a file");
  const std::filesystem::path parent = output.has_parent_path() ? output.parent_path() : std::filesystem::path(".");
  if (!std::filesystem::is_directory(parent, ec)) throw OutputError(output.string() + ": folder " + parent.string() + " does not exist");
  if (::access(parent.c_str(), W_OK) != 0) throw OutputError(output.string() + ": folder " + parent.string() + " is not writable");
}

RunSummary run_job(const RunJob& job, Runner& runner) {
  check_output_path(job.output_file);
  Journal journal(journal_path_for(job.output_file), job.journal_key, job.overwrite_journal);
  RunSummary summary;
  summary.items = job.items.size();
  size_t already = 0;
  for (const QuestionItem& item : job.items) already += journal.done().count(item.index);
  Progress progress(job.items.size(), already);
  std::vector<nlohmann::ordered_json> results;
  results.reserve(job.items.size());
  for (const QuestionItem& item : job.items) {
    ItemResult result;
    if (const auto it = journal.done().find(item.index); it != journal.done().end()) {
      result = it->second;
      ++summary.from_journal;
    } else {
      result = runner.answer(item);
      journal.append(item.index, result);
      ++summary.answered_now;
      if (job.print_answers) {
        progress.finish();
        std::printf("[%zu/%zu] %s -> %s\nQ: %s\nA: %s\n\n", item.index + 1, job.items.size(),
                    std::string(subtask_name(result.subtask)).c_str(), result.model_used.c_str(),
                    item.question.c_str(), result.answer.c_str());
        std::fflush(stdout);
      }
      progress.item_done(result.model_used);
    }
    summary.errors += result.is_error ? 1 : 0;
    ++summary.per_subtask_model[std::string(subtask_name(result.subtask)) + " / " + result.model_used];
    results.push_back(result_json(item, result));
  }
  progress.finish();
  write_results(job.output_file, results);
  summary.seconds = progress.elapsed_seconds();
  summary.counters = runner.counters();
  return summary;
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
  std::snprintf(line, sizeof line,
                "images decoded %zu, encoded %zu; shared prefixes evaluated %zu; prompt tokens evaluated %zu; "
                "generated tokens %zu; answered from the knowledge base %zu",
                s.counters.images_decoded, s.counters.images_encoded, s.counters.prefix_evaluations,
                s.counters.prompt_tokens, s.counters.generated_tokens, s.counters.kb_answers);
  text += line;
  return text;
}

}  // namespace drivevqa
