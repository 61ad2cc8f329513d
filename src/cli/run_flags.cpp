#include "cli/run_flags.h"

#include <charconv>
#include <cstdlib>
#include <set>
#include <stdexcept>

#include "cli/flag_limits.h"
#include "engine/rpc_devices.h"
#include "kb/kb_index.h"
#include "prompt/prompt_file.h"
#include "route/route.h"

namespace drivevqa {
namespace {

// The flags that say which items a run answers and where it writes: `run` only.
void add_item_and_output_flags(CLI::App& cmd, RunArgs& a) {
  cmd.add_option("--json_file,--json-file", a.json_file, "Input question list (converted Track 1 JSON)")->required();
  cmd.add_option("--output_file,--output-file", a.output_file, "Results file to write")->required();
  cmd.add_option("--image_base_dir,--image-base-dir", a.image_base_dir, "Folder the image paths are relative to");
  cmd.add_option("--limit", a.limit, "Answer only the first N items (0: all)");
  cmd.add_option("--shard", a.shard, "Answer only shard K of N (K/N, from 0; whole frames by a stable hash), or auto: "
                 "from a Slurm array or, with --num_shards, a Kubernetes Indexed Job; join the shards with merge");
  cmd.add_option("--num_shards,--num-shards", a.num_shards, "With --shard auto in a Kubernetes Indexed Job: the Job's "
                 "completions")->check(CLI::Range(size_t{1}, size_t{1000000}));
  cmd.add_option("--stats_json,--stats-json", a.stats_json, "Write the run's counters and stage times as JSON");
  cmd.add_option("--dump_prompts,--dump-prompts", a.dump_prompts, "Write each item's exact chat text into this folder");
  cmd.add_flag("--show_config,--show-config", a.show_config, "Print the resolved settings as JSON and exit");
  cmd.add_flag("--overwrite", a.overwrite, "Discard a journal made from another input file or other settings");
  cmd.add_flag("--print_answers,--print-answers", a.print_answers, "Print each question and answer as it finishes");
  cmd.add_flag("--keep_models_loaded,--keep-models-loaded", a.keep_models_loaded,
               "Keep the 72B model in memory while the 7B model runs (default: one model at a time)");
}

void add_input_and_model_flags(CLI::App& cmd, RunArgs& a) {
  cmd.add_option("--model_7b,--model-7b", a.model_7b,
                 "7B model: a folder with model.gguf + mmproj.gguf, a Hugging Face folder, or a Hugging Face cache root");
  cmd.add_option("--model_72b,--model-72b", a.model_72b, "72B model, as --model_7b");
  a.use_lora_7b = std::make_unique<BoolFlag>(cmd, "--use_lora_7b,--use-lora-7b", false, "Apply the 7B LoRA adapter");
  cmd.add_option("--lora_7b_dir,--lora-7b-dir", a.lora_7b_dir, "7B LoRA adapter folder");
  a.use_lora_72b = std::make_unique<BoolFlag>(cmd, "--use_lora_72b,--use-lora-72b", false, "Apply the 72B LoRA adapter");
  cmd.add_option("--lora_72b_dir,--lora-72b-dir", a.lora_72b_dir, "72B LoRA adapter folder");
  cmd.add_option("--lora_mode,--lora-mode", a.lora_mode,
                 "The adapters' language-model pairs: merged (into a cached copy of the text weights: no cost per token, "
                 "a copy's disk space), runtime (beside the base weights at every token), or auto: merged when the base's "
                 "text weights are f32/f16/bf16, runtime when they are quantized")
      ->capture_default_str()->check(CLI::IsMember({"auto", "merged", "runtime"}));
  cmd.add_option("--cache_dir,--cache-dir", a.cache_dir, "Where converted Hugging Face models are kept "
                 "(default ~/.cache/drivevqa/models)");
  cmd.add_option("--dtype", a.dtype, "bf16 or fp16: the KV cache type, and the weight type when a Hugging Face "
                 "folder is converted (GGUF weights keep their own type)")
      ->capture_default_str()->check(CLI::IsMember({"bf16", "fp16"}));
  cmd.add_option("--device_map,--device-map", a.device_map,
                 "auto (all layers on the GPU when built with one), cpu, or a number of GPU layers")
      ->capture_default_str();
  a.use_flash_attn = std::make_unique<BoolFlag>(cmd, "--use_flash_attn,--use-flash-attn", false,
                                                "Flash attention on (False: off; not given: the engine decides)");
  a.fallback = std::make_unique<BoolFlag>(cmd, "--enable_fallback_72b_to_7b,--enable-fallback-72b-to-7b", true,
                                          "Answer with the 7B model when the 72B model cannot load");
}

void add_generation_flags(CLI::App& cmd, RunArgs& a) {
  cmd.add_option("--max_images_per_prompt,--max-images-per-prompt", a.max_images, "Most images per prompt")
      ->capture_default_str()->check(CLI::Range(1, 64));
  cmd.add_option("--max_new_tokens_default,--max-new-tokens-default", a.max_new_tokens_default,
                 "Token budget of subtasks without their own")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  cmd.add_option("--max_new_tokens_cap,--max-new-tokens-cap", a.max_new_tokens_cap,
                 "Upper limit on every subtask's token budget (0: none)")->check(CLI::Range(0, 1 << 20));
  a.do_sample = std::make_unique<BoolFlag>(cmd, "--do_sample,--do-sample", false, "Sample instead of greedy decoding");
  cmd.add_option("--seed", a.seed, "Sampling seed (item i uses seed + i)")->capture_default_str();
  cmd.add_option("--temperature", a.temperature, "Sampling temperature")->capture_default_str()
      ->check(finite_range(0, 100));
  cmd.add_option("--top_p,--top-p", a.top_p, "Sampling nucleus")->capture_default_str()->check(finite_range(0, 1));
  cmd.add_option("--top_k,--top-k", a.top_k, "Sampling top-k (0: off)")->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
}

void add_knowledge_and_route_flags(CLI::App& cmd, RunArgs& a) {
  cmd.add_option("--kb_file,--kb-file", a.kb_file, "Knowledge base JSON (human annotations)");
  cmd.add_option("--rag_mode,--rag-mode", a.rag_mode, "off, hint or override")->capture_default_str()
      ->check(CLI::IsMember({"off", "hint", "override"}));
  cmd.add_option("--kb_topk,--kb-topk", a.kb_topk, "Knowledge base notes per question")->capture_default_str()
      ->check(CLI::Range(0, 100));
  cmd.add_option("--kb_index,--kb-index", a.kb_index, "Where the knowledge base index is kept "
                 "(default: the cache, keyed by the KB file's content)");
  cmd.add_option("--route", a.routes, "Route a subtask to a model, e.g. Prediction=72B (repeatable)");
}

void add_engine_flags(CLI::App& cmd, RunArgs& a) {
  cmd.add_option("-t,--threads", a.threads, "CPU threads (0: all)")->check(thread_count_check());
  cmd.add_option("--image_max_tokens,--image-max-tokens", a.image_max_tokens,
                 "Most LLM tokens per image (0: as --max_pixels allows); one token is 28x28 pixels")
      ->check(CLI::Range(0, 1 << 20));
  cmd.add_option("--max_pixels,--max-pixels", a.max_pixels,
                 "Largest image area after resizing, as the Qwen processor's max_pixels")
      ->capture_default_str()->check(CLI::Range(int64_t{784}, int64_t{1} << 31));
  cmd.add_option("--min_pixels,--min-pixels", a.min_pixels,
                 "Smallest image area after resizing, as the Qwen processor's min_pixels")
      ->capture_default_str()->check(CLI::Range(int64_t{784}, int64_t{1} << 31));
  cmd.add_option("--parallel", a.parallel,
                 "Questions of a frame decoded at once (0: as many as the context holds; frames with "
                 "--self_consistency samples always take as many, so that their answers do not depend on it)")
      ->capture_default_str()->check(CLI::Range(0, 254));
  cmd.add_option("--max_context,--max-context", a.max_context,
                 "Most KV cache cells per model (prefix + parallel questions); a frame that needs more goes in waves")
      ->capture_default_str()->check(CLI::Range(256, 1 << 24));
  a.frame_reuse = std::make_unique<BoolFlag>(cmd, "--frame_reuse,--frame-reuse", true,
                                             "Reuse a frame's decoded, encoded and evaluated images across its questions "
                                             "(False: every question from scratch, as the seed script)");
  cmd.add_option("--rpc", a.rpc,
                 "llama.cpp rpc-server processes (host:port, comma-separated) that take the text models' layers "
                 "(all of them unless --device_map gives a number); trusted networks only: the protocol has no "
                 "authentication or encryption");
}

void add_prompt_flags(CLI::App& cmd, RunArgs& a) {
  cmd.add_option("--prompt_layout,--prompt-layout", a.prompt_layout,
                 "shared: images first, so a frame's questions share one evaluated prefix; seed: the seed's order "
                 "(context, hint, images, question), nothing shared")
      ->capture_default_str()->check(CLI::IsMember({"shared", "seed"}));
  cmd.add_option("--answer_format,--answer-format", a.answer_format,
                 "structured: MCQ answers are one option letter and yes/no answers open with Yes. or No., enforced "
                 "while decoding (what the Track 1 scorer reads); free: the seed's free-text answers")
      ->capture_default_str()->check(CLI::IsMember({"structured", "prompted", "free"}));
  cmd.add_option("--mcq_format,--mcq-format", a.mcq_format,
                 "letter: a bare option letter; letter_text: the letter, a period and the option's exact text")
      ->capture_default_str()->check(CLI::IsMember({"letter", "letter_text"}));
  a.object_crops = std::make_unique<BoolFlag>(cmd, "--object_crops,--object-crops", false,
                                              "Show each object a question names (<cN,CAM,x,y>) as a marked close-up of its "
                                              "camera image, after the frame's shared images (per subtask: the prompts file)");
  cmd.add_option("--crop_size,--crop-size", a.crop_size, "Side of an object close-up, in pixels of the camera image")
      ->capture_default_str()->check(CLI::Range(28, 4096));
  cmd.add_option("--history_frames,--history-frames", a.history_frames,
                 "Earlier key frames (the item's history_frames, 0.5 s apart) shown before the current images, "
                 "oldest first (per subtask: the prompts file)")
      ->capture_default_str()->check(CLI::Range(0, static_cast<int>(kMaxHistoryFrames)));
  cmd.add_option("--history_cameras,--history-cameras", a.history_cameras, "Cameras of the earlier frames, comma-separated")
      ->capture_default_str()->delimiter(',')->check(CLI::IsMember(std::vector<std::string>(kCameraOrder.begin(), kCameraOrder.end())));
  a.draw_markers = std::make_unique<BoolFlag>(cmd, "--draw_markers,--draw-markers", false,
                                              "Draw a marker on each object a question names in the camera images themselves "
                                              "(marked questions share a prefix only with those of the same markers; per subtask: the prompts file)");
  cmd.add_option("--few_shot,--few-shot", a.few_shot,
                 "Show the K most similar question/answer pairs of the same subtask from --kb_file as text-only examples "
                 "(per subtask: the prompts file)")
      ->capture_default_str()->check(CLI::Range(0, kMaxFewShot));
  cmd.add_option("--self_consistency,--self-consistency", a.self_consistency,
                 "Sample N answers per question and vote (MCQ and yes/no: the most common letter or word, ties to the greedy "
                 "answer; open: the sample closest to the others by ROUGE-L); 0 or 1: off (per subtask: the prompts file)")
      ->capture_default_str()->check(CLI::Range(0, kMaxSelfConsistency));
  cmd.add_option("--sc_temperature,--sc-temperature", a.sc_temperature, "Temperature of the --self_consistency samples")
      ->capture_default_str()->check(finite_range(0.01, 10));
  cmd.add_option("--sc_top_p,--sc-top-p", a.sc_top_p, "Top-p of the --self_consistency samples")
      ->capture_default_str()->check(finite_range(0.01, 1));
  cmd.add_option("--prompts", a.prompts_file, "Prompts file replacing parts of the built-in prompts "
                 "(see `drivevqa prompts`)");
}

std::string key_line(const std::string& name, const std::string& text) { return name + "=" + text + "\n"; }

// A line that does not depend on the resolved options.
KeyLines constant_line(const std::string& name, const std::string& text) {
  return [line = key_line(name, text)](const RunOptions&) { return line; };
}

// The double that reads as the float's shortest decimal form: JSON shows 0.9, not 0.8999999761581421.
double shortest_double(float value) {
  char text[32];
  *std::to_chars(text, text + sizeof text - 1, value).ptr = '\0';
  return std::strtod(text, nullptr);
}

std::string sample_text(const GenerationParams& g) {
  return std::to_string(g.do_sample) + "/" + std::to_string(g.seed) + "/" + std::to_string(g.temperature) + "/" +
         std::to_string(g.top_p) + "/" + std::to_string(g.top_k);
}

std::string route_lines(const RoutingTable& routes) {
  std::string lines;
  for (Subtask s : all_subtasks()) lines += key_line(std::string(subtask_name(s)), std::string(model_size_name(routes.model_for(s))));
  return lines;
}

// The flags that can change answers, with their lines in the journal key, in its order.
std::vector<RunSetting> answer_settings(const RunArgs& a) {
  return {
      {"model_7b", a.model_7b, constant_line("model_7b", a.model_7b)},
      {"model_72b", a.model_72b, constant_line("model_72b", a.model_72b)},
      {"cache_dir", a.cache_dir, constant_line("cache_dir", a.cache_dir)},
      {"use_lora_7b", a.use_lora_7b->value(),
       [](const RunOptions& o) { return key_line("lora_7b", o.lora_7b ? o.lora_7b->string() : ""); }},
      {"lora_7b_dir", a.lora_7b_dir, nullptr},  // in the lora_7b line
      {"use_lora_72b", a.use_lora_72b->value(),
       [](const RunOptions& o) { return key_line("lora_72b", o.lora_72b ? o.lora_72b->string() : ""); }},
      {"lora_72b_dir", a.lora_72b_dir, nullptr},  // in the lora_72b line
      // Merged and run-time pairs round differently (different answers possible): a line of its own,
      // none for runtime, which is how every LoRA run went before the flag (those journals resume).
      {"lora_mode", a.lora_mode,
       [](const RunOptions& o) {
         const bool used = o.lora_7b || o.lora_72b;
         return used && o.lora_mode != LoraMode::kRuntime ? key_line("lora_mode", lora_mode_name(o.lora_mode)) : "";
       }},
      {"image_base_dir", a.image_base_dir, constant_line("image_base_dir", a.image_base_dir)},
      {"dtype", a.dtype, constant_line("dtype", a.dtype)},
      {"device_map", a.device_map, constant_line("device_map", a.device_map)},
      {"use_flash_attn", a.use_flash_attn->value(),
       [](const RunOptions& o) { return key_line("flash", std::to_string(static_cast<int>(o.engine.flash_attention))); }},
      {"min_pixels", a.min_pixels,
       [](const RunOptions& o) {
         return key_line("image_pixels", std::to_string(o.sizing.min_pixels) + ".." + std::to_string(o.sizing.max_pixels));
       }},
      {"max_pixels", a.max_pixels, nullptr},              // in the image_pixels line
      {"image_max_tokens", a.image_max_tokens, nullptr},  // in the image_pixels line
      {"max_images_per_prompt", a.max_images, constant_line("max_images", std::to_string(a.max_images))},
      {"max_new_tokens_cap", a.max_new_tokens_cap, constant_line("cap", std::to_string(a.max_new_tokens_cap))},
      {"prompt_layout", a.prompt_layout, constant_line("layout", a.prompt_layout)},
      {"answer_format", a.answer_format, constant_line("answer_format", a.answer_format + "/" + a.mcq_format)},
      {"mcq_format", a.mcq_format, nullptr},  // in the answer_format line
      {"enable_fallback_72b_to_7b", a.fallback->value(),
       [](const RunOptions& o) { return key_line("fallback", std::to_string(o.fallback_72b_to_7b)); }},
      {"do_sample", a.do_sample->value(), [](const RunOptions& o) { return key_line("sample", sample_text(o.generation)); }},
      {"seed", a.seed, nullptr},                                 // in the sample line
      {"temperature", shortest_double(a.temperature), nullptr},  // in the sample line
      {"top_p", shortest_double(a.top_p), nullptr},              // in the sample line
      {"top_k", a.top_k, nullptr},                               // in the sample line
      // Sampled answers are reproduced only with the same batches (README "Reproducibility"): a
      // sampled run resumes only with the same parallelism and context size.
      {"parallel", a.parallel,
       [batches = std::to_string(a.parallel) + "/" + std::to_string(a.max_context)](const RunOptions& o) {
         return o.generation.do_sample ? key_line("batches", batches) : "";
       }},
      {"max_context", a.max_context, nullptr},  // in the batches and self_consistency lines
      {"route", a.routes, [](const RunOptions& o) { return route_lines(o.routes); }},
      {"kb_file", a.kb_file,
       [off = a.kb_file.empty() || a.rag_mode == "off", mode = a.rag_mode + " " + std::to_string(a.kb_topk) + " "](
           const RunOptions& o) { return key_line("kb", off ? "off" : mode + (o.kb ? o.kb->content_hash() : "")); }},
      {"rag_mode", a.rag_mode, nullptr},  // in the kb line
      {"kb_topk", a.kb_topk, nullptr},    // in the kb line
      {"prompts", a.prompts_file,
       [](const RunOptions& o) { return key_line("prompts", prompts_to_json(o.prompts) + std::to_string(o.prompts.default_budget)); }},
      {"max_new_tokens_default", a.max_new_tokens_default, nullptr},  // in the prompts line (the default budget)
  };
}

// The Track 1 teams' techniques (README): each adds its line only when it is on somewhere, so the
// keys of runs without them stay as they were.
std::vector<RunSetting> technique_settings(const RunArgs& a) {
  return {
      {"object_crops", a.object_crops->value(),
       [](const RunOptions& o) { return most_over_subtasks(o.prompts.object_crops, o.object_crops) ? key_line("close_ups", std::to_string(o.crop_size)) : ""; }},
      {"crop_size", a.crop_size, nullptr},  // in the close_ups line
      {"history_frames", a.history_frames,
       [](const RunOptions& o) {
         if (history_image_budget(o) == 0) return std::string();
         std::string cameras;
         for (const std::string& c : o.history_cameras) cameras += c + ",";
         return key_line("history", std::to_string(o.history_frames) + " " + cameras);
       }},
      {"history_cameras", a.history_cameras, nullptr},  // in the history line
      {"draw_markers", a.draw_markers->value(),
       [](const RunOptions& o) { return most_over_subtasks(o.prompts.draw_markers, o.draw_markers) ? key_line("markers", "on") : ""; }},
      {"few_shot", a.few_shot,
       [](const RunOptions& o) {
         // The examples come from the KB whatever --rag_mode is: its content is part of the line.
         if (most_over_subtasks(o.prompts.few_shot, o.few_shot) == 0) return std::string();
         return key_line("few_shot", std::to_string(o.few_shot) + " " + (o.kb ? o.kb->content_hash() : ""));
       }},
      {"self_consistency", a.self_consistency,
       [](const RunOptions& o) {
         if (most_over_subtasks(o.prompts.self_consistency, o.self_consistency) < 2) return std::string();
         // Samples reproduce with the same batches, which the frame and --max_context set (not --parallel).
         return key_line("self_consistency", std::to_string(o.self_consistency) + " " + std::to_string(o.sc_temperature) + " " +
                                                 std::to_string(o.sc_top_p) + " " + std::to_string(o.frames.max_context));
       }},
      {"sc_temperature", shortest_double(a.sc_temperature), nullptr},  // in the self_consistency line
      {"sc_top_p", shortest_double(a.sc_top_p), nullptr},              // in the self_consistency line
  };
}

// The flags that cannot: the question file is hashed beside the settings (the key's other half),
// the thread count may differ on another machine, frame reuse changes how work is shared, not
// what is asked; the rest choose items, memory use or outputs.
std::vector<RunSetting> other_settings(const RunArgs& a) {
  return {
      {"json_file", a.json_file, nullptr},
      {"output_file", a.output_file, nullptr},
      {"limit", a.limit, nullptr},
      {"shard", a.shard, nullptr},  // a shard's frames are answered as in the unsharded run
      {"num_shards", a.num_shards, nullptr},
      {"threads", a.threads, nullptr},
      // Where the layers run, like the machine a run runs on (device_map "auto" is one line for a
      // GPU and a CPU machine): not in the key. Measured: with the layers on CPU rpc-servers (one
      // or two, all layers or one) all 71 demo answers, f16 and bf16 KV, are byte-identical to the
      // local run's (tests/rpc_test.cpp keeps 5); a server on another backend (a GPU) may round
      // differently, as another machine may.
      {"rpc", a.rpc, nullptr},
      {"frame_reuse", a.frame_reuse->value(), nullptr},
      {"keep_models_loaded", a.keep_models_loaded, nullptr},
      {"kb_index", a.kb_index, nullptr},  // an index is keyed by the KB file's content, in the kb line
      {"stats_json", a.stats_json, nullptr},
      {"dump_prompts", a.dump_prompts, nullptr},
      {"print_answers", a.print_answers, nullptr},
      {"overwrite", a.overwrite, nullptr},
      {"show_config", a.show_config, nullptr},
  };
}

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

}  // namespace

void register_run_flags(CLI::App& cmd, RunArgs& args, RunFlagScope scope) {
  // In this order in --help.
  if (scope == RunFlagScope::kRun) add_item_and_output_flags(cmd, args);
  add_input_and_model_flags(cmd, args);
  add_generation_flags(cmd, args);
  add_knowledge_and_route_flags(cmd, args);
  add_engine_flags(cmd, args);
  add_prompt_flags(cmd, args);
}

void apply_rpc_flag(const RunArgs& a, EngineOptions& engine) {
  if (a.rpc.empty()) return;
  if (engine.n_gpu_layers == 0) {
    throw UsageError("--rpc puts the text models' layers on the servers, --device_map cpu keeps them all here: "
                     "leave one out (or give --device_map a number of layers)");
  }
  engine.rpc_servers = parse_rpc_servers(a.rpc);
  rpc_devices(engine.rpc_servers);
}

std::vector<RunSetting> run_settings(const RunArgs& a) {
  std::vector<RunSetting> settings = answer_settings(a);
  std::vector<RunSetting> techniques = technique_settings(a);
  settings.insert(settings.end(), std::make_move_iterator(techniques.begin()), std::make_move_iterator(techniques.end()));
  std::vector<RunSetting> others = other_settings(a);
  settings.insert(settings.end(), std::make_move_iterator(others.begin()), std::make_move_iterator(others.end()));
  return settings;
}

nlohmann::ordered_json settings_json(std::span<const RunSetting> settings) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const RunSetting& s : settings) j[s.flag] = s.value;
  return j;
}

std::string journal_key_text(std::span<const RunSetting> settings, const RunOptions& options) {
  std::string text;
  for (const RunSetting& s : settings) {
    if (s.key_lines) text += s.key_lines(options);
  }
  return text;
}

void check_settings_cover_flags(const CLI::App& cmd, std::span<const RunSetting> settings) {
  std::set<std::string> listed;
  for (const RunSetting& s : settings) listed.insert(s.flag);
  for (const CLI::Option* option : cmd.get_options()) {
    if (option == cmd.get_help_ptr()) continue;
    const std::string& name = option->get_lnames().front();
    if (listed.erase(name) == 0) throw std::logic_error("run: the flag --" + name + " is missing from run_settings()");
  }
  if (!listed.empty()) throw std::logic_error("run: run_settings() lists --" + *listed.begin() + ", which is not a flag");
}

RunOptions run_options(const RunArgs& a) {
  if (a.use_lora_7b->value() && a.lora_7b_dir.empty()) throw UsageError("--use_lora_7b needs --lora_7b_dir");
  if (a.use_lora_72b->value() && a.lora_72b_dir.empty()) throw UsageError("--use_lora_72b needs --lora_72b_dir");
  RunOptions options;
  if (!a.model_7b.empty()) options.model_7b = a.model_7b;
  if (!a.model_72b.empty()) options.model_72b = a.model_72b;
  if (a.use_lora_7b->value()) options.lora_7b = a.lora_7b_dir;
  if (a.use_lora_72b->value()) options.lora_72b = a.lora_72b_dir;
  options.lora_mode = lora_mode_from_name(a.lora_mode);
  options.engine.n_threads = a.threads;
  options.engine.n_gpu_layers = gpu_layers_for(a.device_map);
  apply_rpc_flag(a, options.engine);
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
  options.object_crops = a.object_crops->value();
  options.crop_size = a.crop_size;
  options.history_frames = a.history_frames;
  options.history_cameras = a.history_cameras;
  options.draw_markers = a.draw_markers->value();
  options.few_shot = a.few_shot;
  options.self_consistency = a.self_consistency;
  options.sc_temperature = a.sc_temperature;
  options.sc_top_p = a.sc_top_p;
  return options;
}

}  // namespace drivevqa
