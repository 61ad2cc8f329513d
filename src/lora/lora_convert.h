// A PEFT adapter made ready for the engine, for one base model:
//   adapter.gguf - the language-model LoRA pairs as a GGUF LoRA (applied at run time, unmerged);
//   mmproj.gguf  - the base vision tower with the adapter's vision LoRA merged in (W + s*B*A in f32,
//                  stored in the base tensor's type), only when the adapter has vision pairs.
// llama.cpp's LoRA converter drops the vision pairs silently; here they are used or refused.
#pragma once

#include <filesystem>
#include <optional>

#include "convert/model_source.h"
#include "engine/model.h"
#include "lora/peft_adapter.h"

namespace drivevqa {

struct LoraFiles {
  std::optional<std::filesystem::path> text_adapter;  // absent: the adapter has no language-model pairs
  std::filesystem::path vision;                       // merged mmproj, or the base one
  size_t text_pairs = 0;
  size_t vision_pairs = 0;
};

// Writes into out_dir (created). Throws InputError naming the tensor when the adapter does not fit
// the base model (another model size, unknown module).
LoraFiles convert_lora(const PeftAdapter& adapter, const ModelFiles& base, const std::filesystem::path& out_dir);

// `base` with the adapter in `lora_dir` (or its latest checkpoint-N) applied: text LoRA at run time,
// vision LoRA merged. Made once per (adapter, base) pair in the model cache.
ModelFiles with_lora(const ModelFiles& base, const std::filesystem::path& lora_dir, const ModelSourceOptions& options);

}  // namespace drivevqa
