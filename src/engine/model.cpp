#include "engine/model.h"

#include <gguf.h>
#include <spdlog/spdlog.h>

#include <thread>

#include "engine/gguf_check.h"
#include "util/error.h"
#include "util/interrupt.h"

namespace drivevqa {
namespace {

void forward_engine_log(ggml_log_level level, const char* text, void*) {
  thread_local std::string line;
  thread_local ggml_log_level line_level = GGML_LOG_LEVEL_DEBUG;
  if (level != GGML_LOG_LEVEL_CONT) line_level = level;
  line += text;
  if (line.empty() || line.back() != '\n') return;
  line.pop_back();
  // Engine errors are shown with -v only: drivevqa words its own message for every failed call.
  if (line_level == GGML_LOG_LEVEL_ERROR || line_level == GGML_LOG_LEVEL_WARN) {
    spdlog::debug("engine: {}", line);
  } else {
    spdlog::trace("engine: {}", line);
  }
  line.clear();
}

}  // namespace

ModelFiles find_model_files(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    throw ModelError(dir.string() + ": model folder not found (expected a folder holding model.gguf and mmproj.gguf)");
  }
  ModelFiles files{dir / "model.gguf", dir / "mmproj.gguf", std::nullopt};
  for (const auto& f : {files.text, files.vision}) {
    if (!std::filesystem::exists(f, ec)) {
      throw ModelError(f.string() + ": not found (a model folder holds model.gguf and mmproj.gguf; "
                       "make one with `drivevqa make-model`)");
    }
  }
  return files;
}

int resolved_thread_count(const EngineOptions& options) {
  if (options.n_threads > 0) return options.n_threads;
  return std::max(1u, std::thread::hardware_concurrency());
}

llama_flash_attn_type to_llama(FlashAttention fa) {
  switch (fa) {
    case FlashAttention::kOn: return LLAMA_FLASH_ATTN_TYPE_ENABLED;
    case FlashAttention::kOff: return LLAMA_FLASH_ATTN_TYPE_DISABLED;
    default: return LLAMA_FLASH_ATTN_TYPE_AUTO;
  }
}

void install_engine_logging() {
  static const bool installed = [] {
    llama_log_set(forward_engine_log, nullptr);
    mtmd_helper_log_set(forward_engine_log, nullptr);
    llama_backend_init();
    return true;
  }();
  (void)installed;
}

std::unique_ptr<Model> Model::load(const ModelFiles& files, const EngineOptions& options) {
  install_engine_logging();
  // All files are checked before the engine sees any: llama.cpp and clip.cpp abort on many bad ones.
  const TextModelFacts text = check_text_model_file(files.text);
  if (files.lora) check_lora_file(*files.lora, text);
  check_vision_model_file(files.vision, text.embedding_width);

  std::unique_ptr<Model> model(new Model());
  model->files_ = files;
  model->options_ = options;

  llama_model_params mparams = llama_model_default_params();
  mparams.n_gpu_layers = options.n_gpu_layers;
  // Loading a large model takes minutes: the first Ctrl-C / SIGTERM stops it (util/interrupt.h).
  mparams.progress_callback = [](float, void*) { return !interrupt_requested(); };
  model->text_.reset(llama_model_load_from_file(files.text.c_str(), mparams));
  throw_if_interrupted();
  if (!model->text_) throw ModelError(files.text.string() + ": the engine could not load this text model");
  if (files.lora) {
    model->lora_.reset(llama_adapter_lora_init(model->text_.get(), files.lora->c_str()));
    if (!model->lora_) throw ModelError(files.lora->string() + ": the engine refused this LoRA adapter for " + files.text.string());
  }

  mtmd_context_params vparams = mtmd_context_params_default();
  vparams.use_gpu = options.n_gpu_layers != 0;
  vparams.print_timings = false;
  vparams.n_threads = resolved_thread_count(options);
  vparams.flash_attn_type = to_llama(options.flash_attention);
  vparams.warmup = options.warmup;
  if (options.image_min_tokens > 0) vparams.image_min_tokens = options.image_min_tokens;
  if (options.image_max_tokens > 0) vparams.image_max_tokens = options.image_max_tokens;
  model->vision_.reset(mtmd_init_from_file(files.vision.c_str(), model->text_.get(), vparams));
  if (!model->vision_) {
    throw ModelError(files.vision.string() + ": the engine could not load this vision model for " + files.text.string());
  }
  if (!mtmd_support_vision(model->vision_.get())) {
    throw ModelError(files.vision.string() + ": this mmproj has no vision encoder");
  }
  return model;
}

}  // namespace drivevqa
