// run: the Track 1 pipeline, with the seed script's command line.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <set>

#include "cli/commands.h"
#include "cli/run_flags.h"
#include "dataset/question_file.h"
#include "dataset/shard.h"
#include "kb/kb_index.h"
#include "pipeline/kb_examples.h"
#include "pipeline/run_job.h"
#include "prompt/prompt_file.h"
#include "results/results_file.h"
#include "util/error.h"
#include "util/atomic_file.h"
#include "util/files.h"
#include "util/interrupt.h"
#include "util/path_roles.h"
#include "util/stopwatch.h"
#include "util/text.h"

namespace drivevqa {
namespace {

// Every file the run reads or writes, checked for aliasing before anything is written.
void check_paths(const RunArgs& a, const std::vector<QuestionItem>& items) {
  PathRoles paths;
  paths.read("--json_file", a.json_file);
  paths.read("--kb_file", a.kb_file);
  paths.read("--prompts", a.prompts_file);
  paths.read_folder_files("--model_7b", a.model_7b);
  paths.read_folder_files("--model_72b", a.model_72b);
  paths.read_folder_files("--lora_7b_dir", a.lora_7b_dir);
  paths.read_folder_files("--lora_72b_dir", a.lora_72b_dir);
  std::set<std::filesystem::path> images;
  for (const QuestionItem& item : items) {
    for (const CameraImage& image : item.images) {
      if (images.insert(image.path).second) paths.read("the " + image.camera + " image of item " + std::to_string(item.index), image.path);
    }
  }
  paths.write("--output_file", a.output_file);
  paths.write_in_place("the journal of --output_file", journal_path_for(a.output_file));
  paths.write("--stats_json", a.stats_json);
  paths.write("--kb_index", a.kb_index);
  paths.write_folder("--dump_prompts", a.dump_prompts);
  paths.write_folder("--cache_dir", a.cache_dir);
  paths.check();
}

// `settings` are run_settings(a): what --show_config prints and the journal key holds.
void run(const RunArgs& a, std::span<const RunSetting> settings) {
  if (a.show_config) {
    std::printf("%s\n", settings_json(settings).dump(2).c_str());
    return;
  }
  const std::optional<ShardSpec> shard = resolve_shard(a.shard, a.num_shards, process_environment());
  install_interrupt_handlers();  // SIGINT / SIGTERM: stop at the next safe point, keep what was answered
  RunOptions options = run_options(a);
  if (a.kb_file.empty() && options.rag_mode == RagMode::kOverride) throw UsageError("--rag_mode override needs --kb_file");
  const bool few_shot = most_over_subtasks(options.prompts.few_shot, options.few_shot) > 0;
  if (a.kb_file.empty() && few_shot) {
    throw UsageError("--few_shot (or a prompts file's few_shot) needs --kb_file: the examples come from the knowledge base");
  }

  RunJob job;
  const std::vector<uint8_t> input = read_file_bytes(a.json_file);
  DatasetOptions dataset{a.image_base_dir, static_cast<size_t>(a.max_images), a.limit};
  job.items = parse_question_list(std::string(input.begin(), input.end()), a.json_file, dataset);
  if (shard) {
    const size_t all = job.items.size();
    job.items = items_in_shard(std::move(job.items), *shard);
    spdlog::info("shard {}: {} of the {} items (whole frames)", shard->text(), job.items.size(), all);
  }
  // Nothing is written before every path is known not to alias another (util/path_roles.h).
  check_paths(a, job.items);
  if (!a.stats_json.empty()) require_writable_file_path(a.stats_json, "--stats_json");
  if (!a.kb_file.empty() && (options.rag_mode != RagMode::kOff || few_shot)) {
    options.kb = open_kb_index(a.kb_file, a.kb_index, cache_home(options.sources));
  }
  if (!a.dump_prompts.empty()) {
    options.dump_prompts_dir = a.dump_prompts;
    std::error_code ec;
    std::filesystem::create_directories(options.dump_prompts_dir, ec);
    if (ec) throw OutputError(a.dump_prompts + ": cannot create folder (" + ec.message() + ")");
  }

  job.output_file = a.output_file;
  job.journal_key = {fingerprint(input.data(), input.size()), fingerprint(journal_key_text(settings, options))};
  job.overwrite_journal = a.overwrite;
  job.print_answers = a.print_answers;
  if (!shard) spdlog::info("{} items from {}", job.items.size(), a.json_file);
  Runner runner(std::move(options));
  const RunSummary summary = run_job(job, runner);
  spdlog::info("wrote {}\n{}", a.output_file, describe(summary));
  if (!a.stats_json.empty()) {
    nlohmann::ordered_json stats = stats_json(summary);
    if (shard) stats["shard"] = shard->text();
    write_file_atomic(a.stats_json, stats.dump(2) + "\n");
  }
}

void route_only(const std::string& json_file, const std::string& output_file, const std::vector<std::string>& overrides) {
  RoutingTable routes;
  for (const std::string& r : overrides) routes.apply_override(r);
  PathRoles paths;
  paths.read("--json_file", json_file);
  paths.write("--output_file", output_file);
  paths.check();
  DatasetOptions dataset;
  dataset.check_images = false;
  const auto start = std::chrono::steady_clock::now();
  const std::vector<QuestionItem> items = read_question_file(json_file, dataset);
  std::map<std::string, size_t> counts;
  std::vector<nlohmann::ordered_json> routed;
  for (const QuestionItem& item : items) {
    const auto [subtask, model] = route_item(routes, item);
    ++counts[std::string(subtask_name(subtask)) + " / " + std::string(model_size_name(model))];
    if (!output_file.empty()) {
      nlohmann::ordered_json out = item.original;
      out["subtask"] = std::string(subtask_name(subtask));
      out["model_routed"] = std::string(model_size_name(model));
      routed.push_back(std::move(out));
    }
  }
  if (!output_file.empty()) write_results(output_file, routed);
  const double seconds = seconds_since(start);
  for (const auto& [key, count] : counts) std::printf("%-50s %zu\n", key.c_str(), count);
  std::printf("%zu items routed in %.3f s\n", items.size(), seconds);
}

}  // namespace

CommandAction add_run_command(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand("run", "Answer a converted Track 1 question file (the seed script's flags)");
  register_run_flags(*cmd, *a);
  return [a, cmd] {
    const std::vector<RunSetting> settings = run_settings(*a);
    check_settings_cover_flags(*cmd, settings);
    run(*a, settings);
  };
}

CommandAction add_kb_command(CLI::App& app) {
  struct Args {
    std::string kb_file, kb_index, query, scene, frame, cache_dir, category;
    int topk = 4, few_shot = 0;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("kb", "Build or check the knowledge base index and show what retrieval returns");
  cmd->add_option("--kb_file,--kb-file", a->kb_file, "Knowledge base JSON")->required();
  cmd->add_option("--kb_index,--kb-index", a->kb_index, "Index path (default: the cache)");
  cmd->add_option("--cache_dir,--cache-dir", a->cache_dir, "As in run: the converted-model cache (default "
                  "~/.cache/drivevqa/models); the index goes in kb/ beside it");
  cmd->add_option("--query", a->query, "A question to retrieve notes for");
  cmd->add_option("--scene", a->scene, "Its scene token");
  cmd->add_option("--frame", a->frame, "Its frame token");
  cmd->add_option("--kb_topk,--kb-topk", a->topk, "Notes to show")->capture_default_str();
  cmd->add_option("--few_shot,--few-shot", a->few_shot, "Also show the K examples run --few_shot gives the query")
      ->capture_default_str()->check(CLI::Range(0, kMaxFewShot));
  cmd->add_option("--category", a->category, "The query's Track 1 category, for its subtask (as in ask)");
  return [a] {
    install_interrupt_handlers();  // Ctrl-C / SIGTERM stop a long index build and leave nothing behind
    ModelSourceOptions sources;
    sources.cache_dir = a->cache_dir;
    const std::filesystem::path cache = cache_home(sources);
    PathRoles paths;
    paths.read("--kb_file", a->kb_file);
    paths.write("--kb_index", a->kb_index);
    paths.write_folder("--cache_dir", a->cache_dir);
    paths.check();
    const auto index = open_kb_index(a->kb_file, a->kb_index, cache);
    std::printf("%zu notes (%zu entries skipped: no question), index %s%s\n", index->entries(), index->skipped(),
                index->path().c_str(), index->rebuilt() ? " (built now)" : "");
    if (a->query.empty()) return;
    if (const auto known = index->exact(a->scene, a->frame, a->query)) {
      std::printf("exact match (override answers with it): %s\n", known->answer.c_str());
    }
    const auto hits = index->retrieve(a->scene, a->frame, a->query, a->topk);
    for (const KbHit& h : hits) {
      std::printf("[%s, bm25 %.3f] %s -> %s\n", h.tier.c_str(), h.score, h.entry.question.c_str(), h.entry.answer.c_str());
    }
    std::printf("\nhint block:\n%s", kb_context_block(hits).c_str());
    if (a->few_shot == 0) return;
    const Subtask s = classify(a->category, a->query);
    std::printf("\n%s examples (--few_shot %d):\n%s", std::string(subtask_name(s)).c_str(), a->few_shot,
                few_shot_block(few_shot_examples(*index, s, a->scene, a->frame, a->query, a->few_shot)).c_str());
  };
}

CommandAction add_route_command(CLI::App& app) {
  struct Args {
    std::string json_file, output_file;
    std::vector<std::string> routes;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("route", "Classify and route a question file without any model");
  cmd->add_option("--json_file,--json-file", a->json_file, "Input question list")->required();
  cmd->add_option("--output_file,--output-file", a->output_file, "Write the items with subtask and model_routed");
  cmd->add_option("--route", a->routes, "Route a subtask to a model, e.g. Prediction=72B (repeatable)");
  return [a] { route_only(a->json_file, a->output_file, a->routes); };
}

CommandAction add_prompts_command(CLI::App& app) {
  struct Args {
    int budget = 512;
    std::string answer_format = "structured";
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("prompts", "Print the built-in prompts in the --prompts file format");
  cmd->add_option("--max_new_tokens_default,--max-new-tokens-default", a->budget, "Default budget")->capture_default_str();
  cmd->add_option("--answer_format,--answer-format", a->answer_format, "structured or free, as in run")
      ->capture_default_str()->check(CLI::IsMember({"structured", "prompted", "free"}));
  return [a] {
    const AnswerFormat format = answer_format_from_name(a->answer_format);
    std::fputs(prompts_to_json(default_prompts(a->budget, format)).c_str(), stdout);
  };
}

}  // namespace drivevqa
