#include "engine/model.h"

#include <gguf.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <cstdio>
#include <thread>

#include "engine/gguf_check.h"
#include "engine/memory_plan.h"
#include "engine/rpc_devices.h"
#include "util/memory_limits.h"
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

std::string& engine_abort_note() {
  static std::string note;
  return note;
}

// The engine aborts (GGML_ASSERT) where it cannot go on, most often on a failed allocation. The
// process ends with the engine's message and an exit code instead of SIGABRT.
void on_engine_abort(const char* message) {
  const std::string text = message;
  const bool memory = text.find("NULL") != std::string::npos || text.find("alloc") != std::string::npos ||
                      text.find("buffer") != std::string::npos;
  std::fprintf(stderr, "drivevqa: error: the engine stopped: %s%s\n", message,
               memory ? " (an allocation failed: not enough memory)" : "");
  if (!engine_abort_note().empty()) std::fprintf(stderr, "drivevqa: %s\n", engine_abort_note().c_str());
  std::fflush(stderr);
  ::_exit(static_cast<int>(memory ? ExitCode::kMemory : ExitCode::kFailure));
}

}  // namespace

void set_engine_abort_note(std::string note) { engine_abort_note() = std::move(note); }

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

FlashAttention text_flash_attention(const EngineOptions& options) {
  // A local GPU, not llama_supports_gpu_offload(), which an engine built with the RPC backend
  // answers yes to everywhere. Layers on RPC servers count as the CPU's: which backend a server
  // runs is not known here, and the plain kernel is right on both (--use_flash_attn True on a GPU one).
  const bool local_gpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_GPU) != nullptr ||
                         ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_IGPU) != nullptr;
  const bool on_cpu = options.n_gpu_layers == 0 || !local_gpu;
  return options.flash_attention == FlashAttention::kAuto && on_cpu ? FlashAttention::kOff : options.flash_attention;
}

bool flash_when_alone(const EngineOptions& options, ggml_type kv_type) {
  return options.flash_attention == FlashAttention::kAuto && text_flash_attention(options) == FlashAttention::kOff &&
         kv_type == GGML_TYPE_F16;
}

void install_engine_logging() {
  static const bool installed = [] {
    ggml_set_abort_callback(on_engine_abort);
    llama_log_set(forward_engine_log, nullptr);
    mtmd_helper_log_set(forward_engine_log, nullptr);
    llama_backend_init();
    return true;
  }();
  (void)installed;
}

llama_model_params text_model_params(const EngineOptions& options) {
  llama_model_params mparams = llama_model_default_params();
  mparams.n_gpu_layers = options.n_gpu_layers;
  // The servers' devices take the offloaded layers; the vision tower stays on this machine.
  if (!options.rpc_servers.empty()) mparams.devices = text_model_devices(options.rpc_servers);
  return mparams;
}

mtmd_context_params vision_context_params(const EngineOptions& options) {
  mtmd_context_params vparams = mtmd_context_params_default();
  vparams.use_gpu = options.n_gpu_layers != 0;
  vparams.print_timings = false;
  vparams.n_threads = resolved_thread_count(options);
  vparams.flash_attn_type = to_llama(options.flash_attention);
  vparams.warmup = options.warmup;
  if (options.image_min_tokens > 0) vparams.image_min_tokens = options.image_min_tokens;
  if (options.image_max_tokens > 0) vparams.image_max_tokens = options.image_max_tokens;
  return vparams;
}

namespace {

// The engine refused `file`: for lack of memory when a limit leaves less than the file holds.
[[noreturn]] void throw_load_failure(const std::filesystem::path& file, const std::string& what) {
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(file, ec);
  const auto left = current_memory_headroom().least();
  if (left && !ec && *left < size + (64u << 20)) {
    throw MemoryError(file.string() + ": " + what + ": not enough memory (" + format_bytes(size) + " to load, " +
                      format_bytes(*left) + " left within the limits)");
  }
  throw ModelError(file.string() + ": " + what);
}

}  // namespace

std::unique_ptr<Model> Model::load(const ModelFiles& files, const EngineOptions& options) {
  install_engine_logging();
  // All files are checked before the engine sees any: llama.cpp and clip.cpp abort on many bad ones.
  const TextModelFacts text = check_text_model_file(files.text);
  if (files.lora) check_lora_file(*files.lora, text);
  check_vision_model_file(files.vision, text.embedding_width);
  const MemoryNeed need = measure_memory_need(files, options);
  require_memory(files.text.string(), need, current_memory_headroom());

  std::unique_ptr<Model> model(new Model());
  model->files_ = files;
  model->options_ = options;
  model->vision_bytes_per_token_ = need.vision_compute_per_token;

  llama_model_params mparams = text_model_params(options);
  // Loading a large model takes minutes: the first Ctrl-C / SIGTERM stops it (util/interrupt.h).
  mparams.progress_callback = [](float, void*) { return !interrupt_requested(); };
  model->text_.reset(llama_model_load_from_file(files.text.c_str(), mparams));
  throw_if_interrupted();
  if (!model->text_) throw_load_failure(files.text, "the engine could not load this text model");
  if (files.lora) {
    model->lora_.reset(llama_adapter_lora_init(model->text_.get(), files.lora->c_str()));
    if (!model->lora_) throw_load_failure(*files.lora, "the engine refused this LoRA adapter for " + files.text.string());
  }

  model->vision_.reset(mtmd_init_from_file(files.vision.c_str(), model->text_.get(), vision_context_params(options)));
  if (!model->vision_) throw_load_failure(files.vision, "the engine could not load this vision model for " + files.text.string());
  if (!mtmd_support_vision(model->vision_.get())) {
    throw ModelError(files.vision.string() + ": this mmproj has no vision encoder");
  }
  return model;
}

void Model::require_room_to_encode(size_t image_tokens) const {
  if (image_tokens <= vision_tokens_ready_ || vision_bytes_per_token_ == 0) return;
  const uint64_t grow = vision_bytes_per_token_ * (image_tokens - vision_tokens_ready_);
  if (const auto left = current_memory_headroom().least(); left && *left < grow) {
    throw MemoryError("an image of " + std::to_string(image_tokens) + " tokens needs " + format_bytes(grow) +
                      " more for the vision tower, and the memory limits leave " + format_bytes(*left) +
                      " (a smaller image size needs less)");
  }
  vision_tokens_ready_ = image_tokens;
}

}  // namespace drivevqa
