// A loaded Qwen2.5-VL: the text model (libllama) and its vision tower (libmtmd), loaded once and
// shared by every inference context made from it.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "engine/handles.h"

namespace drivevqa {

// The two GGUF files of one model, as `make-model` and `convert` write them into a folder.
struct ModelFiles {
  std::filesystem::path text;    // model.gguf  (arch qwen2vl)
  std::filesystem::path vision;  // mmproj.gguf (clip, projector qwen2.5vl_merger)
  std::optional<std::filesystem::path> lora;  // a GGUF LoRA applied to the text model in every context
};

// Finds model.gguf + mmproj.gguf in `dir`. Throws ModelError saying what is expected when not found.
ModelFiles find_model_files(const std::filesystem::path& dir);

enum class FlashAttention { kAuto, kOn, kOff };

struct EngineOptions {
  int n_threads = 0;          // 0: all hardware threads
  int n_gpu_layers = 0;       // layers offloaded to the GPU; -1 all (needs a GPU build)
  FlashAttention flash_attention = FlashAttention::kAuto;
  int image_min_tokens = 0;   // 0: the mmproj's default
  int image_max_tokens = 0;   // 0: the mmproj's default
  bool warmup = true;         // run the engine's warm-up passes at load time
};

int resolved_thread_count(const EngineOptions& options);
llama_flash_attn_type to_llama(FlashAttention fa);

class Model {
 public:
  // Throws ModelError naming the file when either file is missing, is not GGUF, or is refused.
  static std::unique_ptr<Model> load(const ModelFiles& files, const EngineOptions& options);

  llama_model* text() const { return text_.get(); }
  mtmd_context* vision() const { return vision_.get(); }
  const llama_vocab* vocab() const { return llama_model_get_vocab(text_.get()); }
  const ModelFiles& files() const { return files_; }
  const EngineOptions& options() const { return options_; }
  int embedding_width() const { return llama_model_n_embd_inp(text_.get()); }
  llama_adapter_lora* lora() const { return lora_.get(); }

 private:
  Model() = default;
  ModelFiles files_;
  EngineOptions options_;
  LlamaModelPtr text_;
  LoraAdapterPtr lora_;  // after text_: freed before the model it belongs to
  MtmdContextPtr vision_;
};

// Routes llama.cpp and mtmd log lines into drivevqa's logger (debug level unless they are errors).
void install_engine_logging();

}  // namespace drivevqa
