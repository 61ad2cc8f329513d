#include "modelgen/lora_writer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "convert/hf_config.h"
#include "lora/peft_adapter.h"
#include "modelgen/random_model.h"
#include "modelgen/safetensors_writer.h"
#include "qwen25vl/tensor_table.h"
#include "util/atomic_file.h"
#include "util/files.h"

namespace drivevqa {
namespace {

std::string leaf(const std::string& module) { return module.substr(module.rfind('.') + 1); }

// The target_modules written, as a real adapter's: every linear module of the text layers and,
// with vision, the vision blocks' fused attention input (whose leaf names also reach their MLP).
std::vector<std::string> target_modules(const HfModelConfig& c, bool vision) {
  const DimSizes sizes = dim_sizes(c.text, c.vision);
  std::vector<std::string> targets;
  const auto add = [&](const std::string& name) {
    if (std::find(targets.begin(), targets.end(), name) == targets.end()) targets.push_back(name);
  };
  for (const LoraModuleShape& m : lora_modules(Tower::kText, sizes, c.text.layers)) {
    if (m.in_block) add(leaf(m.module));
  }
  if (vision) {
    for (const LoraModuleShape& m : lora_modules(Tower::kVision, sizes, c.vision.blocks)) {
      if (m.fused) add(leaf(m.module));
    }
  }
  return targets;
}

// The modules of the layers and blocks that target_modules names.
std::vector<LoraModuleShape> lora_pairs(const HfModelConfig& c, bool vision) {
  const DimSizes sizes = dim_sizes(c.text, c.vision);
  const std::vector<std::string> targets = target_modules(c, vision);
  std::vector<LoraModuleShape> modules = lora_modules(Tower::kText, sizes, c.text.layers);
  if (vision) {
    const std::vector<LoraModuleShape> v = lora_modules(Tower::kVision, sizes, c.vision.blocks);
    modules.insert(modules.end(), v.begin(), v.end());
  }
  std::vector<LoraModuleShape> pairs;
  for (const LoraModuleShape& m : modules) {
    if (m.in_block && std::find(targets.begin(), targets.end(), leaf(m.module)) != targets.end()) pairs.push_back(m);
  }
  return pairs;
}

std::vector<float> normal_values(uint64_t seed, const std::string& name, size_t n, float std) {
  TensorPlan plan{name, {static_cast<int64_t>(n)}, GGML_TYPE_F32, InitKind::kWeight, std};
  return random_tensor_values(seed, plan);
}

void write_adapter(const HfModelConfig& config, const std::filesystem::path& dir, const RandomLoraOptions& o) {
  std::filesystem::create_directories(dir);
  nlohmann::ordered_json cfg = {
      {"peft_type", "LORA"}, {"task_type", "CAUSAL_LM"}, {"base_model_name_or_path", config.name},
      {"r", o.rank}, {"lora_alpha", o.alpha}, {"lora_dropout", 0.05}, {"bias", "none"},
      {"target_modules", target_modules(config, o.vision)},
      {"use_rslora", o.use_rslora}, {"use_dora", o.use_dora}, {"modules_to_save", nullptr},
      {"rank_pattern", o.rank_pattern}, {"alpha_pattern", o.alpha_pattern}, {"fan_in_fan_out", false}};
  write_file_atomic(dir / "adapter_config.json", cfg.dump(2) + "\n");
  PeftConfig peft;
  peft.r = o.rank;
  peft.rank_pattern.assign(o.rank_pattern.begin(), o.rank_pattern.end());
  std::vector<SafetensorsEntry> entries;
  for (const LoraModuleShape& p : lora_pairs(config, o.vision)) {
    int r = o.rank;
    peft_scale(peft, p.module, &r);
    const std::string prefix = "base_model.model." + p.module;
    entries.push_back({prefix + ".lora_A.weight", {r, p.in}});
    entries.push_back({prefix + ".lora_B.weight", {p.out, r}});
    if (o.use_dora) entries.push_back({prefix + ".lora_magnitude_vector", {p.out}});
  }
  write_safetensors_f32(dir / "adapter_model.safetensors", entries, [&](const SafetensorsEntry& e) {
    size_t n = 1;
    for (int64_t d : e.shape) n *= static_cast<size_t>(d);
    const bool is_a = e.name.find("lora_A") != std::string::npos;
    // B*A comes out at about a tenth of the base weights: like a trained adapter, small next to W,
    // yet it visibly changes the output.
    const float std = is_a ? 1.0f / std::sqrt(static_cast<float>(e.shape[1])) : 0.1f / std::sqrt(static_cast<float>(e.shape.back()));
    return normal_values(o.seed, e.name, n, std);
  }, {{"format", "pt"}});
}

}  // namespace

void write_random_lora(const std::filesystem::path& base_hf_dir, const std::filesystem::path& out_dir,
                       const RandomLoraOptions& options) {
  const HfModelConfig config = read_hf_config(base_hf_dir);
  if (options.checkpoints.empty()) {
    write_adapter(config, out_dir, options);
    return;
  }
  for (int n : options.checkpoints) {
    RandomLoraOptions o = options;
    o.seed = options.seed + static_cast<uint64_t>(n);
    write_adapter(config, out_dir / ("checkpoint-" + std::to_string(n)), o);
  }
}

}  // namespace drivevqa
