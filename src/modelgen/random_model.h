// Random-weight Qwen2.5-VL models in exactly the GGUF layout llama.cpp loads (model.gguf with
// arch qwen2vl, mmproj.gguf with projector qwen2.5vl_merger), for tests and benchmarks.
//
// What must hold: the same preset, seed and type give byte-identical files; every tensor's values
// depend only on (seed, tensor name), never on write order; activations stay finite.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <ggml.h>

#include "qwen25vl/presets.h"

namespace drivevqa {

struct RandomModelOptions {
  std::string preset = "tiny";
  uint64_t seed = 1;
  ggml_type weight_type = GGML_TYPE_F32;  // 2-D weights; norms and biases are always F32
  // Text weights are drawn with std init_scale/sqrt(fan_in). 2 gives varied, input-dependent output
  // but a chaotic network in which rounding differences grow ~1000x by the logits; numerical
  // equivalence tests use a calmer 0.5.
  float init_scale = 2.0f;
  // Vision weights: std vision_init_scale/sqrt(fan_in). Equivalence tests of the vision tower use 0.5.
  float vision_init_scale = 1.0f;
};

// How a tensor's random values are drawn.
enum class InitKind { kWeight, kBias, kNorm, kEmbedding };

struct TensorPlan {
  std::string name;           // GGUF name
  std::vector<int64_t> ne;    // ggml order: ne[0] is the contiguous (input) dimension
  ggml_type type;
  InitKind init;
  float std;                  // for kWeight
};

std::vector<TensorPlan> text_tensor_plan(const ModelPreset& preset, ggml_type weight_type, float init_scale = 2.0f);
std::vector<TensorPlan> vision_tensor_plan(const ModelPreset& preset, ggml_type weight_type, float init_scale = 1.0f);

// The f32 values of one planned tensor (deterministic in seed and name).
std::vector<float> random_tensor_values(uint64_t seed, const TensorPlan& plan);

// "drivevqa random Qwen2.5-VL <preset> (seed <n>)": general.name, and _name_or_path in HF form.
std::string random_model_name(const RandomModelOptions& options);

// Writes dir/model.gguf and dir/mmproj.gguf (creating dir). Throws OutputError / UsageError.
void write_random_model(const std::filesystem::path& dir, const RandomModelOptions& options);

// Parses "f32" | "f16" | "bf16" | "q8_0". Throws UsageError otherwise.
ggml_type parse_weight_type(const std::string& name);

}  // namespace drivevqa
