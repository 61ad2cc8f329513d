#include "modelgen/lora_writer.h"

#include <nlohmann/json.hpp>

#include <cmath>

#include "convert/hf_config.h"
#include "lora/peft_adapter.h"
#include "modelgen/random_model.h"
#include "modelgen/safetensors_writer.h"
#include "util/atomic_file.h"
#include "util/files.h"

namespace drivevqa {
namespace {

struct Pair {
  std::string module;  // hub-layout module path
  int64_t in, out;
};

std::vector<Pair> lora_pairs(const HfModelConfig& c, bool vision) {
  const int64_t h = c.text.hidden, kv = c.text.kv_width(), ff = c.text.ffn, vh = c.vision.hidden, vff = c.vision.ffn;
  std::vector<Pair> pairs;
  for (int i = 0; i < c.text.layers; ++i) {
    const std::string l = "model.layers." + std::to_string(i) + ".";
    pairs.push_back({l + "self_attn.q_proj", h, h});
    pairs.push_back({l + "self_attn.k_proj", h, kv});
    pairs.push_back({l + "self_attn.v_proj", h, kv});
    pairs.push_back({l + "self_attn.o_proj", h, h});
    pairs.push_back({l + "mlp.gate_proj", h, ff});
    pairs.push_back({l + "mlp.up_proj", h, ff});
    pairs.push_back({l + "mlp.down_proj", ff, h});
  }
  if (vision) {
    for (int i = 0; i < c.vision.blocks; ++i) {
      const std::string l = "visual.blocks." + std::to_string(i) + ".";
      pairs.push_back({l + "attn.qkv", vh, 3 * vh});
      pairs.push_back({l + "mlp.gate_proj", vh, vff});
      pairs.push_back({l + "mlp.up_proj", vh, vff});
      pairs.push_back({l + "mlp.down_proj", vff, vh});
    }
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
      {"target_modules", {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}},
      {"use_rslora", o.use_rslora}, {"use_dora", o.use_dora}, {"modules_to_save", nullptr},
      {"rank_pattern", o.rank_pattern}, {"alpha_pattern", o.alpha_pattern}, {"fan_in_fan_out", false}};
  if (o.vision) cfg["target_modules"].push_back("qkv");
  write_file_atomic(dir / "adapter_config.json", cfg.dump(2) + "\n");
  PeftConfig peft;
  peft.r = o.rank;
  peft.rank_pattern.assign(o.rank_pattern.begin(), o.rank_pattern.end());
  std::vector<SafetensorsEntry> entries;
  for (const Pair& p : lora_pairs(config, o.vision)) {
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
