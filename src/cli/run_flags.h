// The flags of `run` (the seed script's, with its defaults, and drivevqa's own) and the settings
// they make.
//
// Every flag is listed once in run_settings(), and that one list gives both of its uses:
// --show_config prints each setting, and the journal key holds the line of each setting that can
// change answers, so that a journal is resumed only by a run that would answer the same
// (results/journal.h). What must hold: the key's text for the same settings never changes (or
// journals made before stop resuming), and every registered flag is listed, which
// check_settings_cover_flags() enforces when `run` starts.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "cli/bool_flag.h"
#include "engine/image_resize.h"
#include "pipeline/runner.h"

namespace drivevqa {

struct RunArgs {
  std::string json_file, output_file, image_base_dir, model_7b, model_72b, lora_7b_dir, lora_72b_dir;
  std::string dtype = "bf16", device_map = "auto", kb_file, rag_mode = "hint", lora_mode = "auto";
  int max_images = 6, max_new_tokens_default = 512, max_new_tokens_cap = 0, kb_topk = 4, threads = 0;
  int image_max_tokens = 0, parallel = 0, max_context = 32768;
  std::string shard;
  size_t num_shards = 0;
  std::string rpc;
  int64_t max_pixels = ImageSizing{}.max_pixels, min_pixels = ImageSizing{}.min_pixels;
  uint32_t seed = 888;
  size_t limit = 0;
  float temperature = 1.0f, top_p = 1.0f;
  int top_k = 50;
  std::vector<std::string> routes;
  std::string prompts_file, dump_prompts, cache_dir, kb_index, prompt_layout = "shared", stats_json;
  std::string answer_format = "structured", mcq_format = "letter";
  bool print_answers = false, overwrite = false, show_config = false, keep_models_loaded = false;
  int crop_size = 448, history_frames = 0, few_shot = 0, self_consistency = 0;
  float sc_temperature = 0.7f, sc_top_p = 0.9f;
  std::vector<std::string> history_cameras = {"CAM_FRONT"};
  std::unique_ptr<BoolFlag> use_lora_7b, use_lora_72b, use_flash_attn, fallback, do_sample, frame_reuse, object_crops,
      draw_markers;
};

// kServe: the flags of how items are answered (models, engine, prompts, generation), without
// those of which items and where the results go.
enum class RunFlagScope { kRun, kServe };

// Registers the flags of `run` (or serve's part of them) on `cmd`, parsed into `args` (which must
// outlive the parse).
void register_run_flags(CLI::App& cmd, RunArgs& args, RunFlagScope scope = RunFlagScope::kRun);

// The pipeline's options from the flags; reads only the --prompts file, and connects to the --rpc
// servers. Throws UsageError for values that do not go together.
RunOptions run_options(const RunArgs& args);

// The lines ("name=text\n") a setting adds to the journal key, from the run's resolved options.
using KeyLines = std::function<std::string(const RunOptions&)>;

struct RunSetting {
  // `key_lines` is required: null for a flag that cannot change answers, or whose value another
  // setting's lines hold (the list says which, beside it).
  RunSetting(std::string flag, nlohmann::ordered_json value, KeyLines key_lines)
      : flag(std::move(flag)), value(std::move(value)), key_lines(std::move(key_lines)) {}

  std::string flag;               // its long name without dashes, as --show_config prints it
  nlohmann::ordered_json value;   // as given, or its default
  KeyLines key_lines;
};

// --rpc into `engine`: the servers' list (UsageError when malformed, or with --device_map cpu),
// every server connected now, so that an unreachable one is refused before any work (ModelError
// naming it, exit 4). Nothing when --rpc is not given.
void apply_rpc_flag(const RunArgs& args, EngineOptions& engine);

// Every flag of `args`, in the order of the journal key's lines. Throws UsageError for a boolean
// flag given a value that is not a boolean.
std::vector<RunSetting> run_settings(const RunArgs& args);

// --show_config's JSON: every setting's flag and value.
nlohmann::ordered_json settings_json(std::span<const RunSetting> settings);

// The text whose fingerprint is the journal key's settings half.
std::string journal_key_text(std::span<const RunSetting> settings, const RunOptions& options);

// Throws std::logic_error naming the flag when a flag of `cmd` is not listed in `settings`, or a
// listed one is not a flag of `cmd` (a programming error: a flag was added without its setting).
void check_settings_cover_flags(const CLI::App& cmd, std::span<const RunSetting> settings);

}  // namespace drivevqa
