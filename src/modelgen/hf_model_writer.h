// Random-weight Qwen2.5-VL models as Hugging Face folders (config.json, model.safetensors,
// tokenizer.json, tokenizer_config.json, preprocessor_config.json), for testing the converter.
//
// What must hold: the weights are exactly those make-model writes for the same preset and seed, so
// converting the folder must reproduce make-model's GGUF tensors bit for bit.
#pragma once

#include <filesystem>

#include "modelgen/random_model.h"

namespace drivevqa {

// new_layout: tensor names as transformers >= 4.52 saves them (model.language_model.*, model.visual.*).
void write_random_hf_model(const std::filesystem::path& dir, const RandomModelOptions& options, bool new_layout = false);

}  // namespace drivevqa
