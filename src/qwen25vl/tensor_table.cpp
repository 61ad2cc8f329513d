#include "qwen25vl/tensor_table.h"

#include <cstring>
#include <map>

namespace drivevqa {
namespace {

using D = Dim;
using R = TensorRole;
using P = Presence;
constexpr Tower kT = Tower::kText, kV = Tower::kVision;
constexpr std::array<Dim, 4> vec(Dim a) { return {a, D::kOne, D::kOne, D::kOne}; }
constexpr std::array<Dim, 4> mat(Dim in, Dim out) { return {in, out, D::kOne, D::kOne}; }

// Text tower, then vision tower; within each, file order (the random writer's and the converter's).
const std::vector<TensorRule> kRules = {
    {kT, "token_embd.weight", mat(D::kTextWidth, D::kVocab), R::kEmbedding, P::kRequired, QkvForm::kEither, "model.embed_tokens.weight"},
    {kT, "blk.{}.attn_norm.weight", vec(D::kTextWidth), R::kNorm, P::kRequired, QkvForm::kEither, "model.layers.{}.input_layernorm.weight"},
    {kT, "blk.{}.attn_q.weight", mat(D::kTextWidth, D::kTextWidth), R::kMatrix, P::kRequired, QkvForm::kSeparate, "model.layers.{}.self_attn.q_proj.weight"},
    {kT, "blk.{}.attn_q.bias", vec(D::kTextWidth), R::kBias, P::kWritten, QkvForm::kSeparate, "model.layers.{}.self_attn.q_proj.bias"},
    {kT, "blk.{}.attn_k.weight", mat(D::kTextWidth, D::kKvWidth), R::kMatrix, P::kRequired, QkvForm::kSeparate, "model.layers.{}.self_attn.k_proj.weight"},
    {kT, "blk.{}.attn_k.bias", vec(D::kKvWidth), R::kBias, P::kWritten, QkvForm::kSeparate, "model.layers.{}.self_attn.k_proj.bias"},
    {kT, "blk.{}.attn_v.weight", mat(D::kTextWidth, D::kKvWidth), R::kMatrix, P::kRequired, QkvForm::kSeparate, "model.layers.{}.self_attn.v_proj.weight"},
    {kT, "blk.{}.attn_v.bias", vec(D::kKvWidth), R::kBias, P::kWritten, QkvForm::kSeparate, "model.layers.{}.self_attn.v_proj.bias"},
    {kT, "blk.{}.attn_qkv.weight", mat(D::kTextWidth, D::kQkvWidth), R::kMatrix, P::kAccepted, QkvForm::kFused},
    {kT, "blk.{}.attn_qkv.bias", vec(D::kQkvWidth), R::kBias, P::kAccepted, QkvForm::kFused},
    {kT, "blk.{}.attn_output.weight", mat(D::kTextWidth, D::kTextWidth), R::kMatrix, P::kRequired, QkvForm::kEither, "model.layers.{}.self_attn.o_proj.weight"},
    {kT, "blk.{}.ffn_norm.weight", vec(D::kTextWidth), R::kNorm, P::kRequired, QkvForm::kEither, "model.layers.{}.post_attention_layernorm.weight"},
    {kT, "blk.{}.ffn_gate.weight", mat(D::kTextWidth, D::kTextFfn), R::kMatrix, P::kRequired, QkvForm::kEither, "model.layers.{}.mlp.gate_proj.weight"},
    {kT, "blk.{}.ffn_up.weight", mat(D::kTextWidth, D::kTextFfn), R::kMatrix, P::kRequired, QkvForm::kEither, "model.layers.{}.mlp.up_proj.weight"},
    {kT, "blk.{}.ffn_down.weight", mat(D::kTextFfn, D::kTextWidth), R::kMatrix, P::kRequired, QkvForm::kEither, "model.layers.{}.mlp.down_proj.weight"},
    {kT, "output_norm.weight", vec(D::kTextWidth), R::kNorm, P::kRequired, QkvForm::kEither, "model.norm.weight"},
    {kT, "output.weight", mat(D::kTextWidth, D::kVocab), R::kMatrix, P::kUntied, QkvForm::kEither, "lm_head.weight"},
    {kT, "output.bias", vec(D::kVocab), R::kBias, P::kAccepted},

    {kV, "v.patch_embd.weight", {D::kPatch, D::kPatch, D::kThree, D::kVisionWidth}, R::kConv, P::kRequired, QkvForm::kEither, "visual.patch_embed.proj.weight", HfSlice::kTemporalTap, 0},
    {kV, "v.patch_embd.weight.1", {D::kPatch, D::kPatch, D::kThree, D::kVisionWidth}, R::kConv, P::kRequired, QkvForm::kEither, "visual.patch_embed.proj.weight", HfSlice::kTemporalTap, 1},
    {kV, "v.patch_embd.bias", vec(D::kVisionWidth), R::kBias, P::kRefused},
    {kV, "v.class_embd", vec(D::kVisionWidth), R::kEmbedding, P::kRefused},
    {kV, "v.pre_ln.weight", vec(D::kVisionWidth), R::kNorm, P::kAccepted},
    {kV, "v.pre_ln.bias", vec(D::kVisionWidth), R::kBias, P::kAccepted},
    {kV, "v.blk.{}.ln1.weight", vec(D::kVisionWidth), R::kNorm, P::kRequired, QkvForm::kEither, "visual.blocks.{}.norm1.weight"},
    {kV, "v.blk.{}.ln1.bias", vec(D::kVisionWidth), R::kBias, P::kAccepted},
    {kV, "v.blk.{}.attn_q.weight", mat(D::kVisionWidth, D::kVisionWidth), R::kMatrix, P::kRequired, QkvForm::kEither, "visual.blocks.{}.attn.qkv.weight", HfSlice::kFusedRows, 0},
    {kV, "v.blk.{}.attn_q.bias", vec(D::kVisionWidth), R::kBias, P::kRequired, QkvForm::kEither, "visual.blocks.{}.attn.qkv.bias", HfSlice::kFusedRows, 0},
    {kV, "v.blk.{}.attn_k.weight", mat(D::kVisionWidth, D::kVisionWidth), R::kMatrix, P::kRequired, QkvForm::kEither, "visual.blocks.{}.attn.qkv.weight", HfSlice::kFusedRows, 1},
    {kV, "v.blk.{}.attn_k.bias", vec(D::kVisionWidth), R::kBias, P::kRequired, QkvForm::kEither, "visual.blocks.{}.attn.qkv.bias", HfSlice::kFusedRows, 1},
    {kV, "v.blk.{}.attn_v.weight", mat(D::kVisionWidth, D::kVisionWidth), R::kMatrix, P::kRequired, QkvForm::kEither, "visual.blocks.{}.attn.qkv.weight", HfSlice::kFusedRows, 2},
    {kV, "v.blk.{}.attn_v.bias", vec(D::kVisionWidth), R::kBias, P::kRequired, QkvForm::kEither, "visual.blocks.{}.attn.qkv.bias", HfSlice::kFusedRows, 2},
    {kV, "v.blk.{}.attn_out.weight", mat(D::kVisionWidth, D::kVisionWidth), R::kMatrix, P::kRequired, QkvForm::kEither, "visual.blocks.{}.attn.proj.weight"},
    {kV, "v.blk.{}.attn_out.bias", vec(D::kVisionWidth), R::kBias, P::kWritten, QkvForm::kEither, "visual.blocks.{}.attn.proj.bias"},
    {kV, "v.blk.{}.ln2.weight", vec(D::kVisionWidth), R::kNorm, P::kRequired, QkvForm::kEither, "visual.blocks.{}.norm2.weight"},
    {kV, "v.blk.{}.ln2.bias", vec(D::kVisionWidth), R::kBias, P::kAccepted},
    {kV, "v.blk.{}.ffn_gate.weight", mat(D::kVisionWidth, D::kVisionFfn), R::kMatrix, P::kRequired, QkvForm::kEither, "visual.blocks.{}.mlp.gate_proj.weight"},
    {kV, "v.blk.{}.ffn_gate.bias", vec(D::kVisionFfn), R::kBias, P::kWritten, QkvForm::kEither, "visual.blocks.{}.mlp.gate_proj.bias"},
    {kV, "v.blk.{}.ffn_up.weight", mat(D::kVisionWidth, D::kVisionFfn), R::kMatrix, P::kRequired, QkvForm::kEither, "visual.blocks.{}.mlp.up_proj.weight"},
    {kV, "v.blk.{}.ffn_up.bias", vec(D::kVisionFfn), R::kBias, P::kWritten, QkvForm::kEither, "visual.blocks.{}.mlp.up_proj.bias"},
    {kV, "v.blk.{}.ffn_down.weight", mat(D::kVisionFfn, D::kVisionWidth), R::kMatrix, P::kRequired, QkvForm::kEither, "visual.blocks.{}.mlp.down_proj.weight"},
    {kV, "v.blk.{}.ffn_down.bias", vec(D::kVisionWidth), R::kBias, P::kWritten, QkvForm::kEither, "visual.blocks.{}.mlp.down_proj.bias"},
    {kV, "v.post_ln.weight", vec(D::kVisionWidth), R::kNorm, P::kRequired, QkvForm::kEither, "visual.merger.ln_q.weight"},
    {kV, "v.post_ln.bias", vec(D::kVisionWidth), R::kBias, P::kAccepted},
    {kV, "mm.0.weight", mat(D::kMergerIn, D::kMergerHidden), R::kMatrix, P::kRequired, QkvForm::kEither, "visual.merger.mlp.0.weight"},
    {kV, "mm.0.bias", vec(D::kMergerHidden), R::kBias, P::kRequired, QkvForm::kEither, "visual.merger.mlp.0.bias"},
    {kV, "mm.2.weight", mat(D::kMergerHidden, D::kProjection), R::kMatrix, P::kRequired, QkvForm::kEither, "visual.merger.mlp.2.weight"},
    {kV, "mm.2.bias", vec(D::kProjection), R::kBias, P::kRequired, QkvForm::kEither, "visual.merger.mlp.2.bias"},
};

constexpr const char kBlockMark[] = "{}";

std::string fill_block(const std::string& pattern, const std::string& block) {
  std::string s = pattern;
  const size_t at = s.find(kBlockMark);
  if (at != std::string::npos) s.replace(at, 2, block);
  return s;
}

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// The module a matrix's LoRA pair is named by: its checkpoint name less ".weight".
std::string module_pattern(const TensorRule& rule) {
  if (rule.role != TensorRole::kMatrix || !rule.hf) return "";
  const std::string hf = rule.hf;
  return hf.substr(0, hf.size() - std::strlen(".weight"));
}

// The block index `name` has where `pattern` has "{}" ("" for a pattern without one); nullopt
// when the name does not fit the pattern.
std::optional<std::string> match_block(const std::string& pattern, const std::string& name) {
  const size_t at = pattern.find(kBlockMark);
  if (at == std::string::npos) return name == pattern ? std::optional<std::string>("") : std::nullopt;
  const std::string prefix = pattern.substr(0, at), suffix = pattern.substr(at + 2);
  if (name.size() <= prefix.size() + suffix.size() || name.compare(0, prefix.size(), prefix) != 0 ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return std::nullopt;
  }
  const std::string index = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (index.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return index;
}

QwenTensor expand_rule(const TensorRule& rule, int64_t block, const DimSizes& sizes) {
  QwenTensor t;
  t.rule = &rule;
  t.block = rule.per_block() ? block : -1;
  const std::string index = std::to_string(block);
  t.gguf = fill_block(rule.gguf, index);
  size_t used = rule.ne.size();
  while (used > 1 && rule.ne[used - 1] == Dim::kOne) --used;
  for (size_t i = 0; i < used; ++i) t.ne.push_back(size_of(sizes, rule.ne[i]));
  if (rule.hf) t.hf = fill_block(rule.hf, index);
  const std::string module = module_pattern(rule);
  if (!module.empty()) t.lora_module = fill_block(module, index);
  return t;
}

}  // namespace

DimSizes dim_sizes(const TextShape& text, const VisionShape& vision) {
  DimSizes s{};
  const auto set = [&](Dim d, int64_t v) { s[static_cast<size_t>(d)] = v; };
  set(Dim::kOne, 1);
  set(Dim::kThree, 3);
  set(Dim::kTextWidth, text.hidden);
  set(Dim::kKvWidth, text.kv_width());
  set(Dim::kQkvWidth, text.hidden + 2 * static_cast<int64_t>(text.kv_width()));
  set(Dim::kTextFfn, text.ffn);
  set(Dim::kVocab, text.vocab);
  set(Dim::kVisionWidth, vision.hidden);
  set(Dim::kVisionFfn, vision.ffn);
  set(Dim::kPatch, vision.patch);
  set(Dim::kMergerIn, 4 * static_cast<int64_t>(vision.hidden));
  set(Dim::kMergerHidden, 4 * static_cast<int64_t>(vision.hidden));
  set(Dim::kProjection, text.hidden);
  return s;
}

bool TensorRule::per_block() const { return std::strstr(gguf, kBlockMark) != nullptr; }

const std::vector<TensorRule>& qwen25vl_tensor_rules() { return kRules; }

int64_t QwenTensor::fan_in() const {
  int64_t n = 1;
  for (size_t i = 0; i + 1 < ne.size(); ++i) n *= ne[i];
  return n;
}

std::vector<QwenTensor> tower_tensors(Tower tower, const DimSizes& sizes, int64_t blocks) {
  std::vector<QwenTensor> out;
  for (size_t i = 0; i < kRules.size();) {
    if (kRules[i].tower != tower) {
      ++i;
      continue;
    }
    // A run of per-block rules is one block's tensors, repeated for each block.
    size_t end = i;
    while (end < kRules.size() && kRules[end].tower == tower && kRules[end].per_block() == kRules[i].per_block()) ++end;
    const int64_t repeats = kRules[i].per_block() ? blocks : 1;
    for (int64_t b = 0; b < repeats; ++b) {
      for (size_t k = i; k < end; ++k) out.push_back(expand_rule(kRules[k], b, sizes));
    }
    i = end;
  }
  return out;
}

std::vector<QwenTensor> written_tensors(Tower tower, const DimSizes& sizes, int64_t blocks, bool tied_embeddings) {
  std::vector<QwenTensor> out;
  for (QwenTensor& t : tower_tensors(tower, sizes, blocks)) {
    if (t.rule->written() && !(t.rule->presence == Presence::kUntied && tied_embeddings)) out.push_back(std::move(t));
  }
  return out;
}

std::vector<int64_t> hf_shape(const QwenTensor& t) {
  std::vector<int64_t> shape(t.ne.rbegin(), t.ne.rend());
  if (t.rule->slice == HfSlice::kFusedRows) shape[0] *= 3;
  if (t.rule->slice == HfSlice::kTemporalTap) shape.insert(shape.begin() + 2, 2);  // [out, c, t, kh, kw]
  return shape;
}

ggml_type stored_type(const QwenTensor& t, ggml_type weight_type) {
  switch (t.rule->role) {
    case TensorRole::kConv: return weight_type == GGML_TYPE_F16 ? GGML_TYPE_F16 : GGML_TYPE_F32;
    case TensorRole::kBias:
    case TensorRole::kNorm: return GGML_TYPE_F32;
    case TensorRole::kEmbedding:
    case TensorRole::kMatrix: break;
  }
  if (weight_type == GGML_TYPE_Q8_0 && t.ne[0] % ggml_blck_size(GGML_TYPE_Q8_0) != 0) return GGML_TYPE_F16;
  return weight_type;
}

std::optional<TensorRole> tensor_role(const std::string& gguf_name) {
  for (const TensorRule& r : kRules) {
    if (match_block(r.gguf, gguf_name)) return r.role;
  }
  return std::nullopt;
}

std::vector<LoraTarget> lora_targets(const std::string& hub_module) {
  std::vector<LoraTarget> targets;
  for (const TensorRule& r : kRules) {
    const std::string pattern = module_pattern(r);
    const std::optional<std::string> block = pattern.empty() ? std::nullopt : match_block(pattern, hub_module);
    if (block) targets.push_back({fill_block(r.gguf, *block), r.part, r.slice == HfSlice::kFusedRows ? 3 : 1});
  }
  return targets;
}

std::vector<LoraModuleShape> lora_modules(Tower tower, const DimSizes& sizes, int64_t blocks) {
  std::vector<LoraModuleShape> modules;
  std::map<std::string, size_t> index;
  for (const QwenTensor& t : written_tensors(tower, sizes, blocks)) {
    if (t.lora_module.empty()) continue;
    const auto [it, fresh] = index.emplace(t.lora_module, modules.size());
    if (fresh) modules.push_back({t.lora_module, t.ne[0], 0, t.block >= 0, t.rule->slice == HfSlice::kFusedRows});
    modules[it->second].out += t.ne[1];  // a fused module's parts stack their outputs
  }
  return modules;
}

bool is_vision_module(const std::string& hub_module) { return starts_with(hub_module, "visual."); }

bool is_output_head(const std::string& hub_module) {
  for (const TensorRule& r : kRules) {
    if (r.presence == Presence::kUntied) return hub_module == module_pattern(r);
  }
  return false;
}

std::string hub_name(const std::string& checkpoint_name) {
  std::string n = checkpoint_name;
  if (starts_with(n, "thinker.")) n = n.substr(std::strlen("thinker."));
  if (starts_with(n, "model.language_model.")) return "model." + n.substr(std::strlen("model.language_model."));
  if (starts_with(n, "model.visual.")) return n.substr(std::strlen("model."));
  return n;
}

std::string new_layout_name(const std::string& hub) {
  if (starts_with(hub, "model.")) return "model.language_model." + hub.substr(std::strlen("model."));
  if (starts_with(hub, "visual.")) return "model." + hub;
  return hub;
}

}  // namespace drivevqa
