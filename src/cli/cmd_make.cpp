// make-model and make-demo: the generated inputs that let drivevqa run without any download.
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "convert/content_key.h"
#include "util/error.h"
#include "convert/hf_to_gguf.h"
#include "convert/model_manifest.h"
#include "convert/model_source.h"
#include "convert/quantize.h"
#include "demo/demo_dataset.h"
#include "lora/lora_convert.h"
#include "modelgen/lora_writer.h"
#include "modelgen/hf_model_writer.h"
#include "modelgen/random_model.h"
#include "util/cache_publish.h"
#include "util/interrupt.h"

namespace drivevqa {

CommandAction add_make_model_command(CLI::App& app) {
  struct Args {
    std::string out;
    std::string preset = "tiny";
    uint64_t seed = 1;
    std::string type = "f32";
    std::string format = "gguf";
    bool new_layout = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("make-model", "Write a random-weight Qwen2.5-VL (model.gguf + mmproj.gguf)");
  cmd->add_option("--out", args->out, "Output folder")->required();
  cmd->add_option("--preset", args->preset,
                  "tiny (tests), small (benchmarks) or vision7b (Qwen2.5-VL-7B's vision tower, tiny's text model)")
      ->capture_default_str()->check(CLI::IsMember({"tiny", "small", "vision7b"}));
  cmd->add_option("--seed", args->seed, "Random seed: the same seed gives the same bytes")->capture_default_str();
  cmd->add_option("--outtype", args->type, "Weight type: f32, f16, bf16 or q8_0")->capture_default_str()
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0"}));
  cmd->add_option("--format", args->format, "gguf (model.gguf + mmproj.gguf) or hf (a Hugging Face folder, f32)")
      ->capture_default_str()->check(CLI::IsMember({"gguf", "hf"}));
  cmd->add_flag("--hf_new_layout,--hf-new-layout", args->new_layout,
                "With --format hf: name tensors as transformers >= 4.52 saves them");
  return [args] {
    RandomModelOptions options{args->preset, args->seed, parse_weight_type(args->type)};
    if (args->format == "hf") {
      write_random_hf_model(args->out, options, args->new_layout);
      spdlog::info("wrote the Hugging Face folder {} ({} preset, seed {})", args->out, args->preset, args->seed);
      return;
    }
    write_random_model(args->out, options);
    spdlog::info("wrote {}/model.gguf and {}/mmproj.gguf ({} preset, seed {}, {})", args->out, args->out,
                 args->preset, args->seed, args->type);
  };
}

namespace {

struct ConvertArgs {
  std::string model, out, outtype = "f16", quantize;
  bool overwrite = false;
};

// The --out folder as given, without a trailing slash (so that its parent is its real parent).
std::filesystem::path out_folder(const std::string& out) {
  std::filesystem::path p = std::filesystem::path(out).lexically_normal();
  if (p.filename().empty() && p.has_parent_path()) p = p.parent_path();
  return p;
}

// True when `out` holds something that --overwrite must allow replacing.
bool out_folder_in_use(const std::filesystem::path& out, bool overwrite) {
  std::error_code ec;
  const auto st = std::filesystem::symlink_status(out, ec);
  if (!std::filesystem::exists(st)) return false;
  if (!std::filesystem::is_directory(st)) throw OutputError(out.string() + ": exists and is not a folder");
  if (std::filesystem::is_empty(out, ec)) return false;
  if (!overwrite) {
    throw OutputError(out.string() + ": not empty; pass --overwrite to replace it (the old folder stays until the "
                      "new one is complete)");
  }
  return true;
}

// The whole output is built in a temporary sibling folder and renamed into place at the end, so
// a failure, a signal or a kill leaves --out as it was.
void convert_into_folder(const ConvertArgs& a) {
  const std::filesystem::path out = out_folder(a.out);
  const bool replace = out_folder_in_use(out, a.overwrite);
  const std::filesystem::path parent = out.has_parent_path() ? out.parent_path() : std::filesystem::path(".");
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  remove_abandoned_builds(parent);
  BuildFolder tmp(parent, out.filename().string());
  const ggml_type type = parse_weight_type(a.outtype);
  // A model folder that cannot be converted is a model error (exit 4), as in run and ask.
  const ConvertReport r = as_model_error([&] { return convert_hf_model(a.model, tmp.path(), type); });
  spdlog::info("converted {} tensors ({} MB) in {:.1f} s ({:.0f} MB/s)", r.tensors, r.bytes_read >> 20, r.seconds,
               (r.bytes_read / 1048576.0) / std::max(r.seconds, 1e-9));
  if (!a.quantize.empty()) {
    quantize_text_model(tmp.path() / "model.gguf", a.quantize, 0);
    spdlog::info("quantized model.gguf to {}", a.quantize);
  }
  const std::filesystem::path src = std::filesystem::absolute(a.model, ec);
  write_model_manifest(tmp.path(), {src.string(), content_key({a.model}, a.outtype + " " + a.quantize), a.outtype,
                                    a.quantize});
  throw_if_interrupted();  // the quantizer does not stop on a signal: nothing is published after one
  if (replace) tmp.replace(out);
  else tmp.publish(out);
  spdlog::info("wrote {}", out.string());
}

}  // namespace

CommandAction add_convert_command(CLI::App& app) {
  auto a = std::make_shared<ConvertArgs>();
  CLI::App* cmd = app.add_subcommand("convert", "Convert a Hugging Face Qwen2.5-VL folder into model.gguf + mmproj.gguf");
  cmd->add_option("--model", a->model, "Hugging Face model folder")->required();
  cmd->add_option("--out", a->out, "Output folder (made complete or not at all)")->required();
  cmd->add_option("--outtype", a->outtype, "Weight type: f32, f16, bf16 or q8_0")->capture_default_str()
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0"}));
  cmd->add_option("--quantize", a->quantize, "Then quantize the text model: q4_0, q5_0, q8_0, q4_k_s, q4_k_m, q5_k_s, "
                  "q5_k_m or q6_k (the vision tower keeps --outtype)");
  cmd->add_flag("--overwrite", a->overwrite, "Replace a non-empty --out folder, once the new one is complete");
  return [a] {
    install_interrupt_handlers();  // SIGINT / SIGTERM: stop between tensors, leave --out as it was
    if (!a->quantize.empty()) quantize_ftype(a->quantize);  // a bad name fails before the conversion
    convert_into_folder(*a);
  };
}

CommandAction add_convert_lora_command(CLI::App& app) {
  struct Args {
    std::string lora, base, out, cache_dir;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("convert-lora", "Convert a PEFT LoRA adapter for a base model (text LoRA GGUF + merged mmproj)");
  cmd->add_option("--lora", a->lora, "Adapter folder, or a root of checkpoint-N folders")->required();
  cmd->add_option("--base", a->base, "Base model (GGUF folder, Hugging Face folder or cache root)")->required();
  cmd->add_option("--out", a->out, "Output folder")->required();
  cmd->add_option("--cache_dir,--cache-dir", a->cache_dir, "Where a Hugging Face base is converted");
  return [a] {
    ModelSourceOptions sources;
    sources.cache_dir = a->cache_dir;
    const LoraFiles f = as_model_error([&] {
      const PeftAdapter adapter(a->lora);
      return convert_lora(adapter, resolve_model(a->base, sources), a->out);
    });
    spdlog::info("adapter {}: {} language-model pairs -> {}, {} vision pairs merged -> {}", a->lora,
                 f.text_pairs, f.text_adapter ? f.text_adapter->string() : "(none)", f.vision_pairs, f.vision.string());
  };
}

CommandAction add_make_lora_command(CLI::App& app) {
  struct Args {
    std::string base, out;
    RandomLoraOptions options;
    std::vector<std::string> rank_pattern;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("make-lora", "Write a random PEFT LoRA adapter for a Hugging Face model folder (tests)");
  cmd->add_option("--base", a->base, "Hugging Face model folder (make-model --format hf)")->required();
  cmd->add_option("--out", a->out, "Output folder")->required();
  cmd->add_option("--rank", a->options.rank, "LoRA rank r")->capture_default_str()->check(CLI::Range(1, 4096));
  cmd->add_option("--alpha", a->options.alpha, "lora_alpha")->capture_default_str();
  cmd->add_flag("--vision", a->options.vision, "Also adapt the vision tower");
  cmd->add_flag("--rslora", a->options.use_rslora, "use_rslora: scale alpha / sqrt(r)");
  cmd->add_flag("--dora", a->options.use_dora, "Mark the adapter as DoRA (which drivevqa refuses)");
  cmd->add_option("--checkpoints", a->options.checkpoints, "Write checkpoint-N sub-folders for these N")->delimiter(',');
  cmd->add_option("--seed", a->options.seed, "Random seed")->capture_default_str();
  return [a] {
    write_random_lora(a->base, a->out, a->options);
    spdlog::info("wrote a random LoRA adapter for {} into {}", a->base, a->out);
  };
}

CommandAction add_make_demo_command(CLI::App& app) {
  auto out = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("make-demo", "Write the demo data set (questions.json + camera images + gt.json ground truth)");
  cmd->add_option("--out", *out, "Output folder")->required();
  auto benchmark = std::make_shared<bool>(false);
  cmd->add_flag("--benchmark", *benchmark, "The benchmark workload: 20 questions per frame, no broken items");
  return [out, benchmark] {
    const DemoSummary s = write_demo_dataset(*out, *benchmark ? DemoVariant::kBenchmark : DemoVariant::kDemo);
    spdlog::info("wrote {}: {} scenes, {} frames, {} images, {} questions ({} deliberately broken, {} of them "
                 "unanswerable); ground truth for {} of them in {}",
                 s.questions_file.string(), s.scenes, s.frames, s.images, s.questions, s.broken_items,
                 s.unanswerable_items, s.ground_truth_items, s.ground_truth_file.string());
  };
}

}  // namespace drivevqa
