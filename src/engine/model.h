// A loaded Qwen2.5-VL: the text model (libllama) and its vision tower (libmtmd), loaded once and
// shared by every inference context made from it.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "engine/engine_options.h"
#include "engine/handles.h"

namespace drivevqa {

// Finds model.gguf + mmproj.gguf in `dir`. Throws ModelError saying what is expected when not found.
ModelFiles find_model_files(const std::filesystem::path& dir);

// The image size (in tokens) the pinned engine's Qwen2.5-VL warm-up reserves the vision tower's
// compute buffer for (46 x 46); a larger image makes the buffer grow at its encode.
constexpr size_t kVisionWarmupTokens = 46 * 46;

class Model {
 public:
  // Throws ModelError naming the file when either file is missing, is not GGUF, or is refused, and
  // MemoryError when the model and its planned context do not fit (engine/memory_plan.h).
  static std::unique_ptr<Model> load(const ModelFiles& files, const EngineOptions& options);

  llama_model* text() const { return text_.get(); }
  mtmd_context* vision() const { return vision_.get(); }
  const llama_vocab* vocab() const { return llama_model_get_vocab(text_.get()); }
  const ModelFiles& files() const { return files_; }
  const EngineOptions& options() const { return options_; }
  int embedding_width() const { return llama_model_n_embd_inp(text_.get()); }
  llama_adapter_lora* lora() const { return lora_.get(); }

  // Before the vision tower encodes an image larger than any so far (its compute buffer grows, and
  // the engine crashes when that allocation fails): throws MemoryError when the limits leave too
  // little. Not thread-safe, like encoding itself.
  void require_room_to_encode(size_t image_tokens) const;

 private:
  Model() = default;
  ModelFiles files_;
  EngineOptions options_;
  LlamaModelPtr text_;
  LoraAdapterPtr lora_;  // after text_: freed before the model it belongs to
  MtmdContextPtr vision_;
  uint64_t vision_bytes_per_token_ = 0;  // 0: not measured, no check
  mutable size_t vision_tokens_ready_ = kVisionWarmupTokens;
};

// The engine's parameters for loading the text model and the vision tower with `options`.
llama_model_params text_model_params(const EngineOptions& options);
mtmd_context_params vision_context_params(const EngineOptions& options);

// Routes llama.cpp and mtmd log lines into drivevqa's logger (debug level unless they are errors),
// and turns an engine abort (an assertion, most often a failed allocation) into its message and
// exit 6 (an allocation failed) or 1, instead of SIGABRT.
void install_engine_logging();
// A line printed after an engine abort's message, e.g. where the work finished so far is kept.
void set_engine_abort_note(std::string note);

}  // namespace drivevqa
