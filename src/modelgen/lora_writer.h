// Random PEFT LoRA adapters for a Hugging Face Qwen2.5-VL folder, for tests: the usual
// q/k/v/o/gate/up/down targets (which also match the vision tower's MLP), optionally the vision
// attention, written as adapter_config.json + adapter_model.safetensors.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace drivevqa {

struct RandomLoraOptions {
  int rank = 4;
  float alpha = 8;
  bool vision = false;           // also the vision tower (MLP and fused qkv) and the merger
  bool use_rslora = false;
  bool use_dora = false;         // marks the config (and adds magnitude vectors) to test refusal
  std::map<std::string, int> rank_pattern;
  std::map<std::string, float> alpha_pattern;
  std::vector<int> checkpoints;  // non-empty: write checkpoint-N sub-folders (the same adapter, N in the seed)
  uint64_t seed = 1;
};

void write_random_lora(const std::filesystem::path& base_hf_dir, const std::filesystem::path& out_dir,
                       const RandomLoraOptions& options);

}  // namespace drivevqa
