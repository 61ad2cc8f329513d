#include "modelgen/random_model.h"

#include <cmath>

#include "qwen25vl/gguf_stream_writer.h"
#include "qwen25vl/qwen_gguf_keys.h"
#include "qwen25vl/qwen_vocab.h"
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

TensorPlan weight(std::string name, std::vector<int64_t> ne, ggml_type type, float std) {
  return {std::move(name), std::move(ne), type, InitKind::kWeight, std};
}
TensorPlan bias(std::string name, int64_t n) { return {std::move(name), {n}, GGML_TYPE_F32, InitKind::kBias, 0}; }
TensorPlan norm(std::string name, int64_t n) { return {std::move(name), {n}, GGML_TYPE_F32, InitKind::kNorm, 0}; }

void write_file(const std::filesystem::path& path, GgufStreamWriter& writer, const std::vector<TensorPlan>& plan,
                uint64_t seed) {
  for (const TensorPlan& t : plan) writer.declare_tensor(t.name, t.type, t.ne);
  writer.write(path, [&](size_t i, const ggml_tensor&) {
    return convert_f32(random_tensor_values(seed, plan[i]), plan[i].type, plan[i].ne[0]);
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
  const TextShape& s = preset.text;
  const int64_t h = s.hidden, kv = s.kv_width(), ff = s.ffn, vocab = s.vocab;
  // std 2/sqrt(fan_in) by default: small enough for finite logits at 11k-token prompts, large enough that a
  // random model's output depends on its input (0.02 makes it repeat one token forever).
  const float sh = init_scale / std::sqrt(static_cast<float>(h));
  const float sf = init_scale / std::sqrt(static_cast<float>(ff));
  std::vector<TensorPlan> plan;
  plan.push_back({"token_embd.weight", {h, vocab}, wt, InitKind::kEmbedding, 1.0f});
  for (int i = 0; i < s.layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    plan.push_back(norm(p + "attn_norm.weight", h));
    plan.push_back(weight(p + "attn_q.weight", {h, h}, wt, sh));
    plan.push_back(bias(p + "attn_q.bias", h));
    plan.push_back(weight(p + "attn_k.weight", {h, kv}, wt, sh));
    plan.push_back(bias(p + "attn_k.bias", kv));
    plan.push_back(weight(p + "attn_v.weight", {h, kv}, wt, sh));
    plan.push_back(bias(p + "attn_v.bias", kv));
    plan.push_back(weight(p + "attn_output.weight", {h, h}, wt, sh));
    plan.push_back(norm(p + "ffn_norm.weight", h));
    plan.push_back(weight(p + "ffn_gate.weight", {h, ff}, wt, sh));
    plan.push_back(weight(p + "ffn_up.weight", {h, ff}, wt, sh));
    plan.push_back(weight(p + "ffn_down.weight", {ff, h}, wt, sf));
  }
  plan.push_back(norm("output_norm.weight", h));
  plan.push_back(weight("output.weight", {h, vocab}, wt, sh));
  for (TensorPlan& t : plan) t.type = gguf_tensor_type(t.name, t.ne, wt);
  return plan;
}

std::vector<TensorPlan> vision_tensor_plan(const ModelPreset& preset, ggml_type wt) {
  const VisionShape& v = preset.vision;
  const int64_t h = v.hidden, ff = v.ffn, p = v.patch, merged = 4 * v.hidden, out = preset.text.hidden;
  const auto inv_sqrt = [](int64_t n) { return 1.0f / std::sqrt(static_cast<float>(n)); };
  std::vector<TensorPlan> plan;
  plan.push_back(weight("v.patch_embd.weight", {p, p, 3, h}, wt, inv_sqrt(3 * p * p)));
  plan.push_back(weight("v.patch_embd.weight.1", {p, p, 3, h}, wt, inv_sqrt(3 * p * p)));
  for (int i = 0; i < v.blocks; ++i) {
    const std::string b = "v.blk." + std::to_string(i) + ".";
    plan.push_back(norm(b + "ln1.weight", h));
    for (const char* qkv : {"attn_q", "attn_k", "attn_v"}) {
      plan.push_back(weight(b + qkv + ".weight", {h, h}, wt, inv_sqrt(h)));
      plan.push_back(bias(b + qkv + ".bias", h));
    }
    plan.push_back(weight(b + "attn_out.weight", {h, h}, wt, inv_sqrt(h)));
    plan.push_back(bias(b + "attn_out.bias", h));
    plan.push_back(norm(b + "ln2.weight", h));
    plan.push_back(weight(b + "ffn_gate.weight", {h, ff}, wt, inv_sqrt(h)));
    plan.push_back(bias(b + "ffn_gate.bias", ff));
    plan.push_back(weight(b + "ffn_up.weight", {h, ff}, wt, inv_sqrt(h)));
    plan.push_back(bias(b + "ffn_up.bias", ff));
    plan.push_back(weight(b + "ffn_down.weight", {ff, h}, wt, inv_sqrt(ff)));
    plan.push_back(bias(b + "ffn_down.bias", h));
  }
  plan.push_back(norm("v.post_ln.weight", h));
  plan.push_back(weight("mm.0.weight", {merged, merged}, wt, inv_sqrt(merged)));
  plan.push_back(bias("mm.0.bias", merged));
  plan.push_back(weight("mm.2.weight", {merged, out}, wt, inv_sqrt(merged)));
  plan.push_back(bias("mm.2.bias", out));
  for (TensorPlan& t : plan) t.type = gguf_tensor_type(t.name, t.ne, wt);
  return plan;
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
    write_file(dir / "mmproj.gguf", w, vision_tensor_plan(preset, options.weight_type), options.seed);
  }
}

}  // namespace drivevqa
