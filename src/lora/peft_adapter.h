// PEFT LoRA adapters (adapter_config.json + adapter_model.safetensors), as the seed script loads them.
//
// What must hold: every LoRA pair in the file is either used with its exact PEFT scale or refused
// with a message naming it (DoRA, modules_to_save, embedding LoRA, unknown targets): nothing is
// dropped silently. Scale = alpha / r, or alpha / sqrt(r) with use_rslora; rank_pattern and
// alpha_pattern override r and alpha per module.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "convert/safetensors.h"

namespace drivevqa {

// The adapter folder to use: `dir` itself when it holds adapter_config.json, else its
// checkpoint-N sub-folder with the largest N (numeric order). Throws InputError otherwise.
std::filesystem::path select_adapter_dir(const std::filesystem::path& dir);

struct LoraModule {
  std::string module;         // module path in the hub layout, e.g. "model.layers.3.self_attn.q_proj"
  const TensorView* a = nullptr;  // [r, in]
  const TensorView* b = nullptr;  // [out, r]
  int rank = 0;
  float scale = 0;            // the PEFT scale applied to B·A
  bool vision() const { return module.rfind("visual.", 0) == 0; }
};

struct PeftConfig {
  int r = 8;
  float alpha = 8;
  bool use_rslora = false;
  std::map<std::string, int> rank_pattern;
  std::map<std::string, float> alpha_pattern;
};

// The PEFT scale of `module` under `config` (exposed for tests).
float peft_scale(const PeftConfig& config, const std::string& module, int* rank_out = nullptr);

class PeftAdapter {
 public:
  // Throws InputError naming the folder, file or tensor for anything it cannot apply.
  explicit PeftAdapter(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const { return dir_; }
  const PeftConfig& config() const { return config_; }
  const std::vector<LoraModule>& modules() const { return modules_; }

 private:
  void read_config(const nlohmann::json& j, const std::string& where);
  void load_weights();

  std::filesystem::path dir_;
  PeftConfig config_;
  std::unique_ptr<SafetensorsFile> file_;
  std::vector<LoraModule> modules_;
};

}  // namespace drivevqa
