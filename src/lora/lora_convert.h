// A PEFT adapter made ready for the engine, for one base model:
//   adapter.gguf - runtime mode: the language-model LoRA pairs as a GGUF LoRA (applied at run time,
//                  unmerged: every token pays for B(Ax) beside Wx);
//   model.gguf   - merged mode: the base text model with those pairs merged in (lora/lora_merge.h),
//                  a full copy of the text weights, run at the base model's speed;
//   mmproj.gguf  - the base vision tower with the adapter's vision LoRA merged in (W + s*B*A in f32,
//                  stored in the base tensor's type), only when the adapter has vision pairs.
// llama.cpp's LoRA converter drops the vision pairs silently; here they are used or refused.
//
// What must hold: the two modes are separate cache entries (their answers differ in the last bits),
// each keyed by the adapter's and the base's content (convert/content_key.h) and published whole
// (util/cache_publish.h).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "convert/model_source.h"
#include "engine/model.h"
#include "lora/peft_adapter.h"

namespace drivevqa {

// How the language-model pairs reach the engine. kAuto: kMerged when every weight of the base text
// model is f32, f16 or bf16, else kRuntime (a quantized base would be quantized twice).
enum class LoraMode { kAuto, kMerged, kRuntime };

// "auto", "merged", "runtime"; throws UsageError for anything else.
LoraMode lora_mode_from_name(const std::string& name);
const char* lora_mode_name(LoraMode mode);
// kAuto decided for `base_text` (a text model.gguf); the others as they are.
LoraMode resolve_lora_mode(LoraMode mode, const std::filesystem::path& base_text);

struct LoraFiles {
  std::optional<std::filesystem::path> text_adapter;  // runtime: absent when the adapter has no language-model pairs
  std::optional<std::filesystem::path> text;          // merged: the merged text model (absent: no language-model pairs)
  std::filesystem::path vision;                       // merged mmproj, or the base one
  size_t text_pairs = 0;
  size_t vision_pairs = 0;
};

// Writes into out_dir (created). Throws InputError naming the tensor when the adapter does not fit
// the base model (another model size, unknown module), before any file is written.
LoraFiles convert_lora(const PeftAdapter& adapter, const ModelFiles& base, const std::filesystem::path& out_dir,
                       LoraMode mode = LoraMode::kRuntime);

// `base` with the adapter in `lora_dir` (or its latest checkpoint-N) applied: text LoRA at run time
// or merged (`mode`), vision LoRA merged. Made once per (adapter, base, resolved mode) in the model
// cache. Throws ModelError for an adapter that cannot be used with this base.
ModelFiles with_lora(const ModelFiles& base, const std::filesystem::path& lora_dir, const ModelSourceOptions& options,
                     LoraMode mode = LoraMode::kAuto);

}  // namespace drivevqa
