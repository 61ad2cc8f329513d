// What drivevqa reads from a Hugging Face Qwen2.5-VL folder besides the weights: config.json,
// preprocessor_config.json, tokenizer.json and tokenizer_config.json (or chat_template.json/.jinja).
#pragma once

#include <array>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "qwen25vl/presets.h"
#include "qwen25vl/qwen_vocab.h"

namespace drivevqa {

struct HfVisionExtras {
  int temporal_patch = 2, spatial_merge = 2;
  std::array<float, 3> image_mean{0.48145466f, 0.4578275f, 0.40821073f};
  std::array<float, 3> image_std{0.26862954f, 0.26130258f, 0.27577711f};
};

struct HfTokenizer {
  QwenVocab vocab;  // tokens padded to the text vocab size
  std::optional<int32_t> bos, eos, pad;
  std::string chat_template;
};

struct HfModelConfig {
  std::string name;
  TextShape text;
  VisionShape vision;
  HfVisionExtras vision_extras;
  bool tied_embeddings = false;
};

// Throws InputError naming the file and the key when something needed is missing or wrong.
HfModelConfig read_hf_config(const std::filesystem::path& dir);
HfTokenizer read_hf_tokenizer(const std::filesystem::path& dir, int vocab_size);

// True for a folder that looks like a Hugging Face model (config.json + *.safetensors).
bool is_hf_model_dir(const std::filesystem::path& dir);

}  // namespace drivevqa
