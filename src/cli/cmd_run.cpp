// run: the Track 1 pipeline, with the seed script's command line.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <set>

#include "cli/bool_flag.h"
#include "cli/commands.h"
#include "cli/flag_limits.h"
#include "dataset/question_file.h"
#include "kb/kb_index.h"
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

struct RunArgs {
  std::string json_file, output_file, image_base_dir, model_7b, model_72b, lora_7b_dir, lora_72b_dir;
  std::string dtype = "bf16", device_map = "auto", kb_file, rag_mode = "hint";
  int max_images = 6, max_new_tokens_default = 512, max_new_tokens_cap = 0, kb_topk = 4, threads = 0;
  int image_max_tokens = 0, parallel = 0, max_context = 32768;
  int64_t max_pixels = ImageSizing{}.max_pixels, min_pixels = ImageSizing{}.min_pixels;
  uint32_t seed = 888;
  size_t limit = 0;
  float temperature = 1.0f, top_p = 1.0f;
  int top_k = 50;
  std::vector<std::string> routes;
  std::string prompts_file, dump_prompts, cache_dir, kb_index, prompt_layout = "shared", stats_json;
  std::string answer_format = "structured", mcq_format = "letter";
  bool print_answers = false, overwrite = false, show_config = false, keep_models_loaded = false;
  std::unique_ptr<BoolFlag> use_lora_7b, use_lora_72b, use_flash_attn, fallback, do_sample, frame_reuse;
};

int gpu_layers_for(const std::string& device_map) {
  if (device_map == "auto" || device_map == "cuda" || device_map == "gpu") return -1;
  if (device_map == "cpu") return 0;
  try {
    size_t used = 0;
    const int n = std::stoi(device_map, &used);
    if (used == device_map.size() && n >= -1) return n;
  } catch (const std::exception&) {
  }
  throw UsageError("--device_map '" + device_map + "': expected auto, cpu or a number of GPU layers");
}

void refuse_unbuilt_features(const RunArgs& a) {
  if (a.use_lora_7b->value() && a.lora_7b_dir.empty()) throw UsageError("--use_lora_7b needs --lora_7b_dir");
  if (a.use_lora_72b->value() && a.lora_72b_dir.empty()) throw UsageError("--use_lora_72b needs --lora_72b_dir");

}

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

// Everything that changes answers, for the journal's key (thread count excluded: resuming on
// another machine is allowed).
std::string settings_text(const RunArgs& a, const RunOptions& o) {
  std::string t;
  const auto add = [&](const std::string& k, const std::string& v) { t += k + "=" + v + "\n"; };
  add("model_7b", a.model_7b);
  add("model_72b", a.model_72b);
  add("cache_dir", a.cache_dir);
  add("lora_7b", o.lora_7b ? o.lora_7b->string() : "");
  add("lora_72b", o.lora_72b ? o.lora_72b->string() : "");
  add("image_base_dir", a.image_base_dir);
  add("dtype", a.dtype);
  add("device_map", a.device_map);
  add("flash", std::to_string(static_cast<int>(o.engine.flash_attention)));
  add("image_pixels", std::to_string(o.sizing.min_pixels) + ".." + std::to_string(o.sizing.max_pixels));
  add("max_images", std::to_string(a.max_images));
  add("cap", std::to_string(a.max_new_tokens_cap));
  add("layout", a.prompt_layout);
  add("answer_format", a.answer_format + "/" + a.mcq_format);
  add("fallback", std::to_string(o.fallback_72b_to_7b));
  add("sample", std::to_string(o.generation.do_sample) + "/" + std::to_string(o.generation.seed) + "/" +
                    std::to_string(o.generation.temperature) + "/" + std::to_string(o.generation.top_p) + "/" +
                    std::to_string(o.generation.top_k));
  // Sampled answers are reproduced only with the same batches (README "Reproducibility"): a sampled
  // run resumes only with the same parallelism and context size.
  if (o.generation.do_sample) add("batches", std::to_string(a.parallel) + "/" + std::to_string(a.max_context));
  for (Subtask s : all_subtasks()) add(std::string(subtask_name(s)), std::string(model_size_name(o.routes.model_for(s))));
  add("kb", a.kb_file.empty() || a.rag_mode == "off" ? "off" : a.rag_mode + " " + std::to_string(a.kb_topk) + " " +
                                                                 (o.kb ? o.kb->content_hash() : ""));
  add("prompts", prompts_to_json(o.prompts) + std::to_string(o.prompts.default_budget));
  return t;
}

// The resolved command line, for --show_config (and the tests that check the seed's defaults).
nlohmann::ordered_json config_json(const RunArgs& a) {
  nlohmann::ordered_json j;
  j["json_file"] = a.json_file;
  j["output_file"] = a.output_file;
  j["image_base_dir"] = a.image_base_dir;
  j["model_7b"] = a.model_7b;
  j["model_72b"] = a.model_72b;
  j["use_lora_7b"] = a.use_lora_7b->value();
  j["lora_7b_dir"] = a.lora_7b_dir;
  j["use_lora_72b"] = a.use_lora_72b->value();
  j["lora_72b_dir"] = a.lora_72b_dir;
  j["dtype"] = a.dtype;
  j["device_map"] = a.device_map;
  j["use_flash_attn"] = a.use_flash_attn->value();
  j["enable_fallback_72b_to_7b"] = a.fallback->value();
  j["max_images_per_prompt"] = a.max_images;
  j["max_new_tokens_default"] = a.max_new_tokens_default;
  j["do_sample"] = a.do_sample->value();
  j["seed"] = a.seed;
  j["limit"] = a.limit;
  j["kb_file"] = a.kb_file;
  j["rag_mode"] = a.rag_mode;
  j["kb_topk"] = a.kb_topk;
  j["route"] = a.routes;
  j["max_new_tokens_cap"] = a.max_new_tokens_cap;
  j["answer_format"] = a.answer_format;
  j["mcq_format"] = a.mcq_format;
  return j;
}

// The pipeline's options from the command line; reads only the --prompts file.
RunOptions run_options(const RunArgs& a) {
  RunOptions options;
  if (!a.model_7b.empty()) options.model_7b = a.model_7b;
  if (!a.model_72b.empty()) options.model_72b = a.model_72b;
  if (a.use_lora_7b->value()) options.lora_7b = a.lora_7b_dir;
  if (a.use_lora_72b->value()) options.lora_72b = a.lora_72b_dir;
  options.engine.n_threads = a.threads;
  options.engine.n_gpu_layers = gpu_layers_for(a.device_map);
  options.engine.flash_attention = !a.use_flash_attn->given()  ? FlashAttention::kAuto
                                   : a.use_flash_attn->value() ? FlashAttention::kOn
                                                               : FlashAttention::kOff;
  // drivevqa resizes every image to the processor's target size; the engine's own limits are opened
  // up to that range so that it takes the pixels as they are (no second resize, no padding).
  options.sizing.min_pixels = a.min_pixels;
  options.sizing.max_pixels = a.max_pixels;
  if (a.image_max_tokens > 0) options.sizing.max_pixels = std::min<int64_t>(a.max_pixels, int64_t{a.image_max_tokens} * 28 * 28);
  if (options.sizing.min_pixels > options.sizing.max_pixels) {
    throw UsageError("--min_pixels " + std::to_string(options.sizing.min_pixels) + " is above the largest image size of " +
                     std::to_string(options.sizing.max_pixels) + " pixels");
  }
  const int64_t token_pixels = int64_t{options.sizing.factor} * options.sizing.factor;
  options.engine.image_min_tokens = static_cast<int>(std::max<int64_t>(1, options.sizing.min_pixels / token_pixels));
  options.engine.image_max_tokens = static_cast<int>((options.sizing.max_pixels + token_pixels - 1) / token_pixels);
  options.frames.kv_type = a.dtype == "fp16" ? GGML_TYPE_F16 : GGML_TYPE_BF16;
  options.frames.parallel = a.parallel;
  options.frames.max_context = a.max_context;
  options.frames.reuse = a.frame_reuse->value();
  options.keep_models_loaded = a.keep_models_loaded;
  options.sources.outtype = options.frames.kv_type;  // Hugging Face folders are converted to --dtype
  options.sources.cache_dir = a.cache_dir;
  options.fallback_72b_to_7b = a.fallback->value();
  for (const std::string& r : a.routes) options.routes.apply_override(r);
  options.answer_format = answer_format_from_name(a.answer_format);
  options.mcq_format = a.mcq_format == "letter_text" ? McqFormat::kLetterText : McqFormat::kLetter;
  options.prompts = default_prompts(a.max_new_tokens_default, options.answer_format);
  if (!a.prompts_file.empty()) apply_prompts_file(a.prompts_file, options.prompts);
  options.generation.do_sample = a.do_sample->value();
  options.generation.seed = a.seed;
  options.generation.temperature = a.temperature;
  options.generation.top_p = a.top_p;
  options.generation.top_k = a.top_k;
  options.max_new_tokens_cap = a.max_new_tokens_cap;
  options.frames.layout = a.prompt_layout == "seed" ? PromptLayout::kSeed : PromptLayout::kShared;
  options.rag_mode = a.rag_mode == "off" ? RagMode::kOff : a.rag_mode == "override" ? RagMode::kOverride : RagMode::kHint;
  options.kb_topk = a.kb_topk;
  return options;
}

void run(RunArgs& a) {
  if (a.show_config) {
    std::printf("%s\n", config_json(a).dump(2).c_str());
    return;
  }
  refuse_unbuilt_features(a);
  install_interrupt_handlers();  // SIGINT / SIGTERM: stop at the next safe point, keep what was answered
  RunOptions options = run_options(a);
  if (a.kb_file.empty() && options.rag_mode == RagMode::kOverride) throw UsageError("--rag_mode override needs --kb_file");

  RunJob job;
  const std::vector<uint8_t> input = read_file_bytes(a.json_file);
  DatasetOptions dataset{a.image_base_dir, static_cast<size_t>(a.max_images), a.limit};
  job.items = parse_question_list(std::string(input.begin(), input.end()), a.json_file, dataset);
  // Nothing is written before every path is known not to alias another (util/path_roles.h).
  check_paths(a, job.items);
  if (!a.stats_json.empty()) require_writable_file_path(a.stats_json, "--stats_json");
  if (!a.kb_file.empty() && options.rag_mode != RagMode::kOff) {
    options.kb = KbIndex::open(a.kb_file, a.kb_index, cache_home(options.sources));
  }
  if (!a.dump_prompts.empty()) {
    options.dump_prompts_dir = a.dump_prompts;
    std::error_code ec;
    std::filesystem::create_directories(options.dump_prompts_dir, ec);
    if (ec) throw OutputError(a.dump_prompts + ": cannot create folder (" + ec.message() + ")");
  }

  job.output_file = a.output_file;
  job.journal_key = {fingerprint(input.data(), input.size()), fingerprint(settings_text(a, options))};
  job.overwrite_journal = a.overwrite;
  job.print_answers = a.print_answers;
  spdlog::info("{} items from {}", job.items.size(), a.json_file);
  Runner runner(std::move(options));
  const RunSummary summary = run_job(job, runner);
  spdlog::info("wrote {}\n{}", a.output_file, describe(summary));
  if (!a.stats_json.empty()) write_file_atomic(a.stats_json, stats_json(summary).dump(2) + "\n");
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
  cmd->add_option("--json_file,--json-file", a->json_file, "Input question list (converted Track 1 JSON)")->required();
  cmd->add_option("--output_file,--output-file", a->output_file, "Results file to write")->required();
  cmd->add_option("--image_base_dir,--image-base-dir", a->image_base_dir, "Folder the image paths are relative to");
  cmd->add_option("--model_7b,--model-7b", a->model_7b,
                  "7B model: a folder with model.gguf + mmproj.gguf, a Hugging Face folder, or a Hugging Face cache root");
  cmd->add_option("--model_72b,--model-72b", a->model_72b, "72B model, as --model_7b");
  a->use_lora_7b = std::make_unique<BoolFlag>(*cmd, "--use_lora_7b,--use-lora-7b", false, "Apply the 7B LoRA adapter");
  cmd->add_option("--lora_7b_dir,--lora-7b-dir", a->lora_7b_dir, "7B LoRA adapter folder");
  a->use_lora_72b = std::make_unique<BoolFlag>(*cmd, "--use_lora_72b,--use-lora-72b", false, "Apply the 72B LoRA adapter");
  cmd->add_option("--lora_72b_dir,--lora-72b-dir", a->lora_72b_dir, "72B LoRA adapter folder");
  cmd->add_option("--cache_dir,--cache-dir", a->cache_dir, "Where converted Hugging Face models are kept "
                  "(default ~/.cache/drivevqa/models)");
  cmd->add_option("--dtype", a->dtype, "bf16 or fp16: the KV cache type, and the weight type when a Hugging Face "
                  "folder is converted (GGUF weights keep their own type)")
      ->capture_default_str()->check(CLI::IsMember({"bf16", "fp16"}));
  cmd->add_option("--device_map,--device-map", a->device_map,
                  "auto (all layers on the GPU when built with one), cpu, or a number of GPU layers")
      ->capture_default_str();
  a->use_flash_attn = std::make_unique<BoolFlag>(*cmd, "--use_flash_attn,--use-flash-attn", false,
                                                 "Flash attention on (False: off; not given: the engine decides)");
  a->fallback = std::make_unique<BoolFlag>(*cmd, "--enable_fallback_72b_to_7b,--enable-fallback-72b-to-7b", true,
                                           "Answer with the 7B model when the 72B model cannot load");
  cmd->add_option("--max_images_per_prompt,--max-images-per-prompt", a->max_images, "Most images per prompt")
      ->capture_default_str()->check(CLI::Range(1, 64));
  cmd->add_option("--max_new_tokens_default,--max-new-tokens-default", a->max_new_tokens_default,
                  "Token budget of subtasks without their own")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--max_new_tokens_cap,--max-new-tokens-cap", a->max_new_tokens_cap,
                  "Upper limit on every subtask's token budget (0: none)")->check(CLI::Range(0, 1 << 20));
  a->do_sample = std::make_unique<BoolFlag>(*cmd, "--do_sample,--do-sample", false, "Sample instead of greedy decoding");
  cmd->add_option("--seed", a->seed, "Sampling seed (item i uses seed + i)")->capture_default_str();
  cmd->add_option("--temperature", a->temperature, "Sampling temperature")->capture_default_str()
      ->check(finite_range(0, 100));
  cmd->add_option("--top_p,--top-p", a->top_p, "Sampling nucleus")->capture_default_str()->check(finite_range(0, 1));
  cmd->add_option("--top_k,--top-k", a->top_k, "Sampling top-k (0: off)")->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--limit", a->limit, "Answer only the first N items (0: all)");
  cmd->add_option("--kb_file,--kb-file", a->kb_file, "Knowledge base JSON (human annotations)");
  cmd->add_option("--rag_mode,--rag-mode", a->rag_mode, "off, hint or override")->capture_default_str()
      ->check(CLI::IsMember({"off", "hint", "override"}));
  cmd->add_option("--kb_topk,--kb-topk", a->kb_topk, "Knowledge base notes per question")->capture_default_str()
      ->check(CLI::Range(0, 100));
  cmd->add_option("--kb_index,--kb-index", a->kb_index, "Where the knowledge base index is kept "
                  "(default: the cache, keyed by the KB file's content)");
  cmd->add_option("--route", a->routes, "Route a subtask to a model, e.g. Prediction=72B (repeatable)");
  cmd->add_option("-t,--threads", a->threads, "CPU threads (0: all)")->check(thread_count_check());
  cmd->add_option("--image_max_tokens,--image-max-tokens", a->image_max_tokens,
                  "Most LLM tokens per image (0: as --max_pixels allows); one token is 28x28 pixels")
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--max_pixels,--max-pixels", a->max_pixels,
                  "Largest image area after resizing, as the Qwen processor's max_pixels")
      ->capture_default_str()->check(CLI::Range(int64_t{784}, int64_t{1} << 31));
  cmd->add_option("--min_pixels,--min-pixels", a->min_pixels,
                  "Smallest image area after resizing, as the Qwen processor's min_pixels")
      ->capture_default_str()->check(CLI::Range(int64_t{784}, int64_t{1} << 31));
  cmd->add_option("--parallel", a->parallel,
                  "Questions of a frame decoded at once (0: as many as the context holds)")
      ->capture_default_str()->check(CLI::Range(0, 254));
  cmd->add_option("--max_context,--max-context", a->max_context,
                  "Most KV cache cells per model (prefix + parallel questions); a frame that needs more goes in waves")
      ->capture_default_str()->check(CLI::Range(256, 1 << 24));
  a->frame_reuse = std::make_unique<BoolFlag>(*cmd, "--frame_reuse,--frame-reuse", true,
                                              "Reuse a frame's decoded, encoded and evaluated images across its questions "
                                              "(False: every question from scratch, as the seed script)");
  cmd->add_flag("--keep_models_loaded,--keep-models-loaded", a->keep_models_loaded,
                "Keep the 72B model in memory while the 7B model runs (default: one model at a time)");
  cmd->add_option("--stats_json,--stats-json", a->stats_json, "Write the run's counters and stage times as JSON");
  cmd->add_option("--prompt_layout,--prompt-layout", a->prompt_layout,
                  "shared: images first, so a frame's questions share one evaluated prefix; seed: the seed's order "
                  "(context, hint, images, question), nothing shared")
      ->capture_default_str()->check(CLI::IsMember({"shared", "seed"}));
  cmd->add_option("--answer_format,--answer-format", a->answer_format,
                  "structured: MCQ answers are one option letter and yes/no answers open with Yes. or No., enforced "
                  "while decoding (what the Track 1 scorer reads); free: the seed's free-text answers")
      ->capture_default_str()->check(CLI::IsMember({"structured", "prompted", "free"}));
  cmd->add_option("--mcq_format,--mcq-format", a->mcq_format,
                  "letter: a bare option letter; letter_text: the letter, a period and the option's exact text")
      ->capture_default_str()->check(CLI::IsMember({"letter", "letter_text"}));
  cmd->add_option("--prompts", a->prompts_file, "Prompts file replacing parts of the built-in prompts "
                  "(see `drivevqa prompts`)");
  cmd->add_option("--dump_prompts,--dump-prompts", a->dump_prompts, "Write each item's exact chat text into this folder");
  cmd->add_flag("--show_config,--show-config", a->show_config, "Print the resolved settings as JSON and exit");
  cmd->add_flag("--overwrite", a->overwrite, "Discard a journal made from another input file or other settings");
  cmd->add_flag("--print_answers,--print-answers", a->print_answers, "Print each question and answer as it finishes");
  return [a] { run(*a); };
}

CommandAction add_kb_command(CLI::App& app) {
  struct Args {
    std::string kb_file, kb_index, query, scene, frame, cache_dir;
    int topk = 4;
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
    const auto index = KbIndex::open(a->kb_file, a->kb_index, cache);
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
