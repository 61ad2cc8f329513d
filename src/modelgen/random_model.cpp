#include "modelgen/random_model.h"

#include <cmath>

#include "qwen25vl/gguf_stream_writer.h"
#include "qwen25vl/qwen_gguf_keys.h"
#include "qwen25vl/qwen_vocab.h"
#include "qwen25vl/tensor_table.h"
#include "util/error.h"
#include "util/text.h"

namespace drivevqa {
namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Weights are drawn with std scale/sqrt(fan_in), the embedding with std 1; biases near 0, norms near 1.
std::vector<TensorPlan> tensor_plan(Tower tower, const ModelPreset& preset, ggml_type wt, float scale) {
  const int64_t blocks = tower == Tower::kText ? preset.text.layers : preset.vision.blocks;
  std::vector<TensorPlan> plan;
  for (const QwenTensor& t : written_tensors(tower, dim_sizes(preset.text, preset.vision), blocks)) {
    TensorPlan p{t.gguf, t.ne, stored_type(t, wt), InitKind::kWeight, 0};
    switch (t.rule->role) {
      case TensorRole::kEmbedding: p.init = InitKind::kEmbedding, p.std = 1.0f; break;
      case TensorRole::kMatrix:
      case TensorRole::kConv: p.std = scale / std::sqrt(static_cast<float>(t.fan_in())); break;
      case TensorRole::kBias: p.init = InitKind::kBias; break;
      case TensorRole::kNorm: p.init = InitKind::kNorm; break;
    }
    plan.push_back(std::move(p));
  }
  return plan;
}

void write_file(const std::filesystem::path& path, GgufStreamWriter& writer, const std::vector<TensorPlan>& plan,
                uint64_t seed) {
  for (const TensorPlan& t : plan) writer.declare_tensor(t.name, t.type, t.ne);
  std::vector<uint8_t> bytes;
  writer.write(path, [&](size_t i, const ggml_tensor&) {
    return convert_f32(random_tensor_values(seed, plan[i]), plan[i].type, plan[i].ne[0], bytes);
  });
}

}  // namespace

ggml_type parse_weight_type(const std::string& name) {
  if (name == "f32") return GGML_TYPE_F32;
  if (name == "f16") return GGML_TYPE_F16;
  if (name == "bf16") return GGML_TYPE_BF16;
  if (name == "q8_0") return GGML_TYPE_Q8_0;
  throw UsageError("unknown weight type '" + name + "' (expected f32, f16, bf16 or q8_0)");
}

std::vector<TensorPlan> text_tensor_plan(const ModelPreset& preset, ggml_type wt, float init_scale) {
  // 2/sqrt(fan_in) by default: small enough for finite logits at 11k-token prompts, large enough that a
  // random model's output depends on its input (0.02 makes it repeat one token forever).
  return tensor_plan(Tower::kText, preset, wt, init_scale);
}

std::vector<TensorPlan> vision_tensor_plan(const ModelPreset& preset, ggml_type wt, float init_scale) {
  return tensor_plan(Tower::kVision, preset, wt, init_scale);
}

std::vector<float> random_tensor_values(uint64_t seed, const TensorPlan& plan) {
  int64_t count = 1;
  for (int64_t n : plan.ne) count *= n;
  uint64_t state = seed ^ fnv1a64(plan.name);
  std::vector<float> values(static_cast<size_t>(count));
  const auto uniform = [&] { return (static_cast<double>(splitmix64(state) >> 11) + 0.5) * (1.0 / 9007199254740992.0); };
  for (int64_t i = 0; i < count; i += 2) {
    // Box-Muller: two normals per pair of uniforms.
    const double r = std::sqrt(-2.0 * std::log(uniform()));
    const double a = 2.0 * M_PI * uniform();
    const double z[2] = {r * std::cos(a), r * std::sin(a)};
    for (int k = 0; k < 2 && i + k < count; ++k) {
      double v = 0;
      switch (plan.init) {
        case InitKind::kWeight:
        case InitKind::kEmbedding: v = plan.std * z[k]; break;
        case InitKind::kBias: v = 0.02 * z[k]; break;
        case InitKind::kNorm: v = 1.0 + 0.05 * z[k]; break;
      }
      values[static_cast<size_t>(i + k)] = static_cast<float>(v);
    }
  }
  return values;
}

std::string random_model_name(const RandomModelOptions& options) {
  return "drivevqa random Qwen2.5-VL " + options.preset + " (seed " + std::to_string(options.seed) + ")";
}

void write_random_model(const std::filesystem::path& dir, const RandomModelOptions& options) {
  const ModelPreset& preset = model_preset(options.preset);
  const TextShape& t = preset.text;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw OutputError(dir.string() + ": cannot create folder (" + ec.message() + ")");
  const std::string name = random_model_name(options);

  const QwenVocab vocab = qwen25vl_vocab(t.vocab);
  {
    GgufStreamWriter w;
    write_text_model_keys(w, {name, options.weight_type, t, &vocab, kQwenEndOfText, kQwenImEnd, kQwenEndOfText,
                              qwen25vl_chat_template()});
    write_file(dir / "model.gguf", w, text_tensor_plan(preset, options.weight_type, options.init_scale), options.seed);
  }
  {
    GgufStreamWriter w;
    VisionModelKeys keys;
    keys.name = name;
    keys.weight_type = options.weight_type;
    keys.shape = preset.vision;
    keys.projection_dim = t.hidden;
    write_vision_model_keys(w, keys);
    write_file(dir / "mmproj.gguf", w, vision_tensor_plan(preset, options.weight_type, options.vision_init_scale), options.seed);
  }
}

}  // namespace drivevqa
