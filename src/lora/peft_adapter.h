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
#include "lora/peft_regex.h"
#include "qwen25vl/tensor_table.h"

namespace drivevqa {

// The adapter folder to use: `dir` itself when it holds adapter_config.json, else its
// checkpoint-N sub-folder with the largest N (numeric order, any number of digits). Throws
// InputError otherwise.
std::filesystem::path select_adapter_dir(const std::filesystem::path& dir);

struct LoraModule {
  std::string module;         // module path in the hub layout (qwen25vl/tensor_table.h)
  std::string peft_name;      // as the file names it (the key PEFT matched), in the file's own layout
  // Into the adapter's mapped file: valid while the PeftAdapter that made them lives.
  const TensorView* a = nullptr;  // [r, in]
  const TensorView* b = nullptr;  // [out, r]
  int rank = 0;
  float scale = 0;            // the PEFT scale applied to B·A
  bool vision() const { return is_vision_module(module); }
};

// Which modules the config puts LoRA layers on, decided as PEFT's check_target_module_exists
// (peft/tuners/tuners_utils.py) does, on the full module name in the base model: exclude_modules
// first, then target_modules as a string (re.fullmatch; "all-linear": every linear layer but the
// output head) or a list (equal, or ends with "." + entry; only then layers_to_transform
// limits the layer index, found after layers_pattern or as the first numeric segment).
struct PeftTargets {
  bool any = true;  // the config has no target_modules: every pair in the file
  bool all_linear = false;
  std::vector<std::string> names;
  std::shared_ptr<const PeftRegex> regex;
  std::vector<std::string> exclude_names;
  std::shared_ptr<const PeftRegex> exclude_regex;
  bool has_layers = false;  // layers_to_transform given
  std::vector<std::string> layers;  // layer indices as canonical decimal strings (no leading zeros)
  std::vector<std::shared_ptr<const PeftRegex>> layers_patterns;  // ".*\\.(?:pattern)"
  std::string description;  // for messages, e.g. target_modules ["<name>"]

  bool targets(const std::string& module) const;
};

struct PeftConfig {
  int r = 8;
  float alpha = 8;
  bool use_rslora = false;
  // In the file's order: as PEFT's get_pattern_key, the first key that matches a module wins.
  std::vector<std::pair<std::string, int>> rank_pattern;
  std::vector<std::pair<std::string, float>> alpha_pattern;
  PeftTargets targets;
};

// The PEFT scale of `module` under `config` (exposed for tests).
float peft_scale(const PeftConfig& config, const std::string& module, int* rank_out = nullptr);

class PeftAdapter {
 public:
  // Throws InputError naming the folder, file or tensor for anything it cannot apply: tensors that
  // are not LoRA pairs, the same module twice (both naming layouts, with and without ".default"),
  // tensors sharing bytes, a config that targets none of the file's pairs. Pairs the config does
  // not target are left out with a warning naming them, as PEFT leaves them unloaded.
  explicit PeftAdapter(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const { return dir_; }
  const PeftConfig& config() const { return config_; }
  const std::vector<LoraModule>& modules() const { return modules_; }
  const std::vector<std::string>& untargeted() const { return untargeted_; }  // file names, left out

 private:
  void read_config(const nlohmann::json& j, const std::string& where);
  void read_patterns(std::string_view text, const std::string& where);
  void read_targets(const nlohmann::json& j, const std::string& where);
  void load_weights();

  std::filesystem::path dir_;
  PeftConfig config_;
  std::unique_ptr<SafetensorsFile> file_;
  std::vector<LoraModule> modules_;
  std::vector<std::string> untargeted_;
};

}  // namespace drivevqa
