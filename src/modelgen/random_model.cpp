#include "modelgen/random_model.h"

#include <cmath>

#include "modelgen/gguf_stream_writer.h"
#include "modelgen/qwen_vocab.h"
#include "util/error.h"

namespace drivevqa {
namespace {

// llama_ftype values written as general.file_type.
uint32_t file_type_of(ggml_type t) {
  switch (t) {
    case GGML_TYPE_F32: return 0;
    case GGML_TYPE_F16: return 1;
    case GGML_TYPE_Q8_0: return 7;
    case GGML_TYPE_BF16: return 32;
    default: throw UsageError(std::string("unsupported weight type ") + ggml_type_name(t));
  }
}

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

TensorPlan weight(std::string name, std::vector<int64_t> ne, ggml_type type, float std) {
  return {std::move(name), std::move(ne), type, InitKind::kWeight, std};
}
TensorPlan bias(std::string name, int64_t n) { return {std::move(name), {n}, GGML_TYPE_F32, InitKind::kBias, 0}; }
TensorPlan norm(std::string name, int64_t n) { return {std::move(name), {n}, GGML_TYPE_F32, InitKind::kNorm, 0}; }

// Q8_0 needs rows in whole blocks of 32; like llama.cpp's converter, narrower rows fall back to F16.
ggml_type fit_type(ggml_type wanted, int64_t row_length) {
  if (wanted == GGML_TYPE_Q8_0 && row_length % ggml_blck_size(GGML_TYPE_Q8_0) != 0) return GGML_TYPE_F16;
  return wanted;
}

void write_common_keys(gguf_context* kv, const char* arch, const char* type, const std::string& name,
                       ggml_type weight_type) {
  gguf_set_val_str(kv, "general.architecture", arch);
  gguf_set_val_str(kv, "general.type", type);
  gguf_set_val_str(kv, "general.name", name.c_str());
  gguf_set_val_u32(kv, "general.file_type", file_type_of(weight_type));
  gguf_set_val_u32(kv, "general.quantization_version", GGML_QNT_VERSION);
}

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

std::vector<TensorPlan> text_tensor_plan(const ModelPreset& preset, ggml_type wt) {
  const TextShape& s = preset.text;
  const int64_t h = s.hidden, kv = s.kv_width(), ff = s.ffn, vocab = s.vocab;
  // std 2/sqrt(fan_in): small enough for finite logits at 11k-token prompts, large enough that a
  // random model's output depends on its input (0.02 makes it repeat one token forever).
  const float sh = 2.0f / std::sqrt(static_cast<float>(h));
  const float sf = 2.0f / std::sqrt(static_cast<float>(ff));
  std::vector<TensorPlan> plan;
  plan.push_back({"token_embd.weight", {h, vocab}, fit_type(wt, h), InitKind::kEmbedding, 1.0f});
  for (int i = 0; i < s.layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    plan.push_back(norm(p + "attn_norm.weight", h));
    plan.push_back(weight(p + "attn_q.weight", {h, h}, fit_type(wt, h), sh));
    plan.push_back(bias(p + "attn_q.bias", h));
    plan.push_back(weight(p + "attn_k.weight", {h, kv}, fit_type(wt, h), sh));
    plan.push_back(bias(p + "attn_k.bias", kv));
    plan.push_back(weight(p + "attn_v.weight", {h, kv}, fit_type(wt, h), sh));
    plan.push_back(bias(p + "attn_v.bias", kv));
    plan.push_back(weight(p + "attn_output.weight", {h, h}, fit_type(wt, h), sh));
    plan.push_back(norm(p + "ffn_norm.weight", h));
    plan.push_back(weight(p + "ffn_gate.weight", {h, ff}, fit_type(wt, h), sh));
    plan.push_back(weight(p + "ffn_up.weight", {h, ff}, fit_type(wt, h), sh));
    plan.push_back(weight(p + "ffn_down.weight", {ff, h}, fit_type(wt, ff), sf));
  }
  plan.push_back(norm("output_norm.weight", h));
  plan.push_back(weight("output.weight", {h, vocab}, fit_type(wt, h), sh));
  return plan;
}

std::vector<TensorPlan> vision_tensor_plan(const ModelPreset& preset, ggml_type wt) {
  const VisionShape& v = preset.vision;
  const int64_t h = v.hidden, ff = v.ffn, p = v.patch, merged = 4 * v.hidden, out = preset.text.hidden;
  const auto inv_sqrt = [](int64_t n) { return 1.0f / std::sqrt(static_cast<float>(n)); };
  // Like llama.cpp's converter: the patch embedding is F16 for F16 files and F32 otherwise.
  const ggml_type patch_type = wt == GGML_TYPE_F16 ? GGML_TYPE_F16 : GGML_TYPE_F32;
  std::vector<TensorPlan> plan;
  plan.push_back(weight("v.patch_embd.weight", {p, p, 3, h}, patch_type, inv_sqrt(3 * p * p)));
  plan.push_back(weight("v.patch_embd.weight.1", {p, p, 3, h}, patch_type, inv_sqrt(3 * p * p)));
  for (int i = 0; i < v.blocks; ++i) {
    const std::string b = "v.blk." + std::to_string(i) + ".";
    plan.push_back(norm(b + "ln1.weight", h));
    for (const char* qkv : {"attn_q", "attn_k", "attn_v"}) {
      plan.push_back(weight(b + qkv + ".weight", {h, h}, fit_type(wt, h), inv_sqrt(h)));
      plan.push_back(bias(b + qkv + ".bias", h));
    }
    plan.push_back(weight(b + "attn_out.weight", {h, h}, fit_type(wt, h), inv_sqrt(h)));
    plan.push_back(bias(b + "attn_out.bias", h));
    plan.push_back(norm(b + "ln2.weight", h));
    plan.push_back(weight(b + "ffn_gate.weight", {h, ff}, fit_type(wt, h), inv_sqrt(h)));
    plan.push_back(bias(b + "ffn_gate.bias", ff));
    plan.push_back(weight(b + "ffn_up.weight", {h, ff}, fit_type(wt, h), inv_sqrt(h)));
    plan.push_back(bias(b + "ffn_up.bias", ff));
    plan.push_back(weight(b + "ffn_down.weight", {ff, h}, fit_type(wt, ff), inv_sqrt(ff)));
    plan.push_back(bias(b + "ffn_down.bias", h));
  }
  plan.push_back(norm("v.post_ln.weight", h));
  plan.push_back(weight("mm.0.weight", {merged, merged}, fit_type(wt, merged), inv_sqrt(merged)));
  plan.push_back(bias("mm.0.bias", merged));
  plan.push_back(weight("mm.2.weight", {merged, out}, fit_type(wt, merged), inv_sqrt(merged)));
  plan.push_back(bias("mm.2.bias", out));
  return plan;
}

std::vector<float> random_tensor_values(uint64_t seed, const TensorPlan& plan) {
  int64_t count = 1;
  for (int64_t n : plan.ne) count *= n;
  uint64_t state = seed ^ fnv1a(plan.name);
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

void write_random_model(const std::filesystem::path& dir, const RandomModelOptions& options) {
  const ModelPreset& preset = model_preset(options.preset);
  const TextShape& t = preset.text;
  const VisionShape& v = preset.vision;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw OutputError(dir.string() + ": cannot create folder (" + ec.message() + ")");
  const std::string name = "drivevqa random Qwen2.5-VL " + preset.name + " (seed " + std::to_string(options.seed) + ")";

  {
    GgufStreamWriter w;
    gguf_context* kv = w.kv();
    write_common_keys(kv, "qwen2vl", "model", name, options.weight_type);
    gguf_set_val_u32(kv, "qwen2vl.block_count", t.layers);
    gguf_set_val_u32(kv, "qwen2vl.context_length", t.context_length);
    gguf_set_val_u32(kv, "qwen2vl.embedding_length", t.hidden);
    gguf_set_val_u32(kv, "qwen2vl.feed_forward_length", t.ffn);
    gguf_set_val_u32(kv, "qwen2vl.attention.head_count", t.heads);
    gguf_set_val_u32(kv, "qwen2vl.attention.head_count_kv", t.kv_heads);
    gguf_set_arr_data(kv, "qwen2vl.rope.dimension_sections", GGUF_TYPE_INT32, t.rope_sections.data(), 4);
    gguf_set_val_f32(kv, "qwen2vl.rope.freq_base", t.rope_theta);
    gguf_set_val_f32(kv, "qwen2vl.attention.layer_norm_rms_epsilon", t.rms_eps);
    const QwenVocab vocab = qwen25vl_vocab(t.vocab);
    gguf_set_val_str(kv, "tokenizer.ggml.model", "gpt2");
    gguf_set_val_str(kv, "tokenizer.ggml.pre", "qwen2");
    w.set_string_array("tokenizer.ggml.tokens", vocab.tokens);
    gguf_set_arr_data(kv, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, vocab.types.data(), vocab.types.size());
    w.set_string_array("tokenizer.ggml.merges", vocab.merges);
    gguf_set_val_u32(kv, "tokenizer.ggml.eos_token_id", kQwenImEnd);
    gguf_set_val_u32(kv, "tokenizer.ggml.padding_token_id", kQwenEndOfText);
    gguf_set_val_u32(kv, "tokenizer.ggml.bos_token_id", kQwenEndOfText);
    gguf_set_val_str(kv, "tokenizer.chat_template", qwen25vl_chat_template().c_str());
    write_file(dir / "model.gguf", w, text_tensor_plan(preset, options.weight_type), options.seed);
  }
  {
    GgufStreamWriter w;
    gguf_context* kv = w.kv();
    write_common_keys(kv, "clip", "mmproj", name, options.weight_type);
    gguf_set_val_bool(kv, "clip.has_vision_encoder", true);
    gguf_set_val_str(kv, "clip.projector_type", "qwen2.5vl_merger");
    gguf_set_val_bool(kv, "clip.use_silu", true);
    gguf_set_val_u32(kv, "clip.vision.n_wa_pattern", v.full_attention_every);
    gguf_set_val_f32(kv, "clip.vision.attention.layer_norm_epsilon", v.eps);
    gguf_set_val_u32(kv, "clip.vision.projection_dim", t.hidden);
    gguf_set_val_u32(kv, "clip.vision.image_size", v.image_size);
    gguf_set_val_u32(kv, "clip.vision.patch_size", v.patch);
    gguf_set_val_u32(kv, "clip.vision.embedding_length", v.hidden);
    gguf_set_val_u32(kv, "clip.vision.feed_forward_length", v.ffn);
    gguf_set_val_u32(kv, "clip.vision.block_count", v.blocks);
    gguf_set_val_u32(kv, "clip.vision.attention.head_count", v.heads);
    const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    const float std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    gguf_set_arr_data(kv, "clip.vision.image_mean", GGUF_TYPE_FLOAT32, mean, 3);
    gguf_set_arr_data(kv, "clip.vision.image_std", GGUF_TYPE_FLOAT32, std, 3);
    write_file(dir / "mmproj.gguf", w, vision_tensor_plan(preset, options.weight_type), options.seed);
  }
}

}  // namespace drivevqa
