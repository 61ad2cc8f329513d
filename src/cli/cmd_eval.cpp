// eval: scores a results file against ground truth as Track 1 / DriveBench does (eval/track1_score.h).
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>

#include "cli/commands.h"
#include "convert/model_source.h"
#include "eval/ground_truth.h"
#include "eval/meteor.h"
#include "eval/report.h"
#include "eval/track1_score.h"
#include "util/error.h"
#include "util/atomic_file.h"
#include "util/files.h"
#include "util/interrupt.h"
#include "util/path_roles.h"

namespace drivevqa {
namespace {

struct EvalArgs {
  std::string predictions, ground_truth, report, json, wordnet_dir = "/usr/share/wordnet";
  std::string judge_url, judge_model, judge_api_key_env = "OPENAI_API_KEY", judge_cache;
  int judge_parallel = 4, judge_timeout = 300;
};

// An output must never replace an input (or the other output): refused before any work.
void refuse_aliased_outputs(const EvalArgs& a) {
  PathRoles paths;
  paths.read("--predictions", a.predictions);
  paths.read("--ground_truth", a.ground_truth);
  if (a.judge_cache != "none") paths.write("--judge_cache", a.judge_cache);
  paths.write("--json", a.json);
  paths.write("--report", a.report);
  paths.check();
}

std::filesystem::path judge_cache_path(const EvalArgs& a) {
  if (a.judge_cache == "none") return {};
  const std::filesystem::path path =
      a.judge_cache.empty() ? default_cache_dir().parent_path() / "judge-cache.sqlite" : std::filesystem::path(a.judge_cache);
  if (path.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    if (ec) throw OutputError(path.parent_path().string() + ": cannot create the judge cache's folder (" + ec.message() + ")");
  }
  return path;
}

JudgeOptions judge_options(const EvalArgs& a) {
  JudgeOptions o;
  o.url = a.judge_url;
  o.model = a.judge_model;
  o.parallel = a.judge_parallel;
  o.timeout_seconds = a.judge_timeout;
  // The key is read here and handed to the judge only; it is never logged.
  if (const char* key = std::getenv(a.judge_api_key_env.c_str()); key && *key) {
    o.api_key = key;
    spdlog::info("judge {} ({}), API key from ${}", a.judge_url, a.judge_model, a.judge_api_key_env);
  } else {
    spdlog::info("judge {} ({}), no API key (${} is not set)", a.judge_url, a.judge_model, a.judge_api_key_env);
  }
  o.cache_file = judge_cache_path(a);
  return o;
}

void run_eval(const EvalArgs& a) {
  if (!a.judge_url.empty() && a.judge_model.empty()) throw UsageError("--judge_url needs --judge_model");
  if (a.judge_url.empty() && !a.judge_model.empty()) throw UsageError("--judge_model needs --judge_url");
  refuse_aliased_outputs(a);
  // Before any scoring (and any judge request).
  if (!a.json.empty()) require_writable_file_path(a.json, "--json");
  if (!a.report.empty()) require_writable_file_path(a.report, "--report");

  const AnswerFile ground_truth = read_ground_truth(a.ground_truth);
  const AnswerFile predictions = read_predictions(a.predictions);
  const Pairing pairing = pair_items(ground_truth, predictions);
  spdlog::info("{} ground-truth questions, {} predictions, {} paired", ground_truth.items.size(),
               predictions.items.size(), pairing.pairs.size());
  const std::unique_ptr<Meteor> meteor = Meteor::load(a.wordnet_dir);
  std::optional<JudgeOptions> judge;
  if (!a.judge_url.empty()) {
    judge = judge_options(a);
    install_interrupt_handlers();  // Ctrl-C: the judge's workers stop; replies so far stay cached
  }
  const Evaluation evaluation = evaluate(ground_truth, predictions, pairing, meteor.get(), judge ? &*judge : nullptr);

  const ReportInput input{ground_truth, predictions, pairing, evaluation, a.judge_url, a.judge_model};
  const std::string table = text_report(input);
  std::fwrite(table.data(), 1, table.size(), stdout);
  std::fflush(stdout);
  if (!a.json.empty()) {
    write_file_atomic(a.json, json_report(input).dump(2) + "\n");
    spdlog::info("wrote {}", a.json);
  }
  if (!a.report.empty()) {
    write_file_atomic(a.report, html_report(input));
    spdlog::info("wrote {}", a.report);
  }
}

}  // namespace

CommandAction add_eval_command(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "Score a results file against ground truth (Track 1 / DriveBench scoring)");
  cmd->add_option("--predictions", a->predictions, "Results file (converted list with `answer` filled)")->required();
  cmd->add_option("--ground_truth,--ground-truth", a->ground_truth,
                  "Ground truth: the converted list with `answer`, or DriveLM's nested {scene: {key_frames: ...}} form")
      ->required();
  cmd->add_option("--json", a->json, "Write every score, count and per-question result as JSON");
  cmd->add_option("--report", a->report, "Write a self-contained HTML report (chart, tables, the 20 worst answers)");
  cmd->add_option("--wordnet_dir,--wordnet-dir", a->wordnet_dir, "WordNet data folder for METEOR's synonyms")
      ->capture_default_str();
  cmd->add_option("--judge_url,--judge-url", a->judge_url,
                  "OpenAI-compatible endpoint of an LLM judge for open answers (not given: no judge, so no full Track 1 score)");
  cmd->add_option("--judge_model,--judge-model", a->judge_model, "The judge's model name (required with --judge_url)");
  cmd->add_option("--judge_api_key_env,--judge-api-key-env", a->judge_api_key_env,
                  "Environment variable holding the judge's API key (never printed; unset: no key sent)")
      ->capture_default_str();
  cmd->add_option("--judge_parallel,--judge-parallel", a->judge_parallel, "Judge requests in flight at once")
      ->capture_default_str()->check(CLI::Range(1, 256));
  cmd->add_option("--judge_timeout,--judge-timeout", a->judge_timeout, "Seconds per judge request")
      ->capture_default_str()->check(CLI::Range(1, 86400));
  cmd->add_option("--judge_cache,--judge-cache", a->judge_cache,
                  "SQLite cache of judge replies, keyed by prompt and model, shared by every eval "
                  "(default: $XDG_CACHE_HOME/drivevqa/judge-cache.sqlite, else ~/.cache/drivevqa/judge-cache.sqlite; "
                  "none: no cache)");
  return [a] { run_eval(*a); };
}

}  // namespace drivevqa
