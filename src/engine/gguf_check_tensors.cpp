// Tensor checks of engine/gguf_check.h driven by the Qwen2.5-VL tensor table: which tensors
// llama.cpp's loaders need, accept or refuse, and the shape each must have.
#include <set>

#include "engine/gguf_check_reader.h"

namespace drivevqa::gguf_check {
namespace {

TensorUse use_of(TensorRole role) {
  switch (role) {
    case TensorRole::kConv: return TensorUse::kConv;
    case TensorRole::kBias:
    case TensorRole::kNorm: return TensorUse::kVector;
    case TensorRole::kEmbedding:
    case TensorRole::kMatrix: break;
  }
  return TensorUse::kMatrix;
}

// "embedding_length 128 x feed_forward_length 384": where each used dimension comes from.
std::string shape_why(const TensorRule& rule, const TableDims& dims) {
  std::string why;
  for (Dim d : rule.ne) {
    if (d == Dim::kOne) continue;
    why += (why.empty() ? "" : " x ") + dims.why[static_cast<size_t>(d)];
  }
  return why;
}

Shape padded(const std::vector<int64_t>& ne) {
  Shape s{1, 1, 1, 1};
  for (size_t i = 0; i < ne.size() && i < s.size(); ++i) s[i] = ne[i];
  return s;
}

// Blocks whose text attention is in llama.cpp's fused form, and those whose fused form has its bias.
struct FusedBlocks {
  std::set<int64_t> fused, with_bias;
};

FusedBlocks fused_blocks(const GgufReader& r, const std::vector<QwenTensor>& tensors) {
  FusedBlocks f;
  for (const QwenTensor& t : tensors) {
    if (t.rule->qkv != QkvForm::kFused || !r.tensor(t.gguf)) continue;
    (t.rule->role == TensorRole::kBias ? f.with_bias : f.fused).insert(t.block);
  }
  return f;
}

// How the loader treats this tensor given the block's attention form; nullopt: not loaded at all.
std::optional<Presence> presence_in_file(const QwenTensor& t, const FusedBlocks& f) {
  const bool fused = f.fused.count(t.block) > 0;
  switch (t.rule->qkv) {
    case QkvForm::kEither: return t.rule->presence;
    case QkvForm::kFused:
      if (!fused) return std::nullopt;
      return t.rule->role == TensorRole::kBias ? Presence::kAccepted : Presence::kRequired;
    case QkvForm::kSeparate:
      if (!fused) return t.rule->presence;
      // Fused weights; the separate biases are loaded only when the fused one is absent.
      if (t.rule->role == TensorRole::kBias && !f.with_bias.count(t.block)) return Presence::kAccepted;
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace

void TableDims::set(Dim d, int64_t value, std::string where_from) {
  size[static_cast<size_t>(d)] = value;
  why[static_cast<size_t>(d)] = std::move(where_from);
}

std::set<std::string> check_tower_tensors(const GgufReader& r, Tower tower, const TableDims& dims, int64_t blocks) {
  const std::vector<QwenTensor> tensors = tower_tensors(tower, dims.size, blocks);
  const FusedBlocks fused = fused_blocks(r, tensors);
  std::set<std::string> accepted;
  for (const QwenTensor& t : tensors) {
    const std::optional<Presence> presence = presence_in_file(t, fused);
    if (!presence) continue;
    const TensorUse use = use_of(t.rule->role);
    switch (*presence) {
      case Presence::kRequired: r.expect_tensor(t.gguf, padded(t.ne), use, shape_why(*t.rule, dims)); break;
      case Presence::kWritten:
      case Presence::kUntied:
      case Presence::kAccepted:
        if (!r.optional_tensor(t.gguf, padded(t.ne), use, shape_why(*t.rule, dims))) continue;
        break;
      case Presence::kRefused:
        if (r.tensor(t.gguf)) r.fail("has tensor " + t.gguf + ", which the qwen2.5vl graph asserts is absent");
        continue;
    }
    accepted.insert(t.gguf);
  }
  return accepted;
}

std::optional<int64_t> size_in_file(const GgufReader& r, Tower tower, Dim d) {
  for (const TensorRule& rule : qwen25vl_tensor_rules()) {
    if (rule.tower != tower || rule.per_block()) continue;
    for (size_t k = 0; k < rule.ne.size(); ++k) {
      if (rule.ne[k] != d) continue;
      if (const TensorInfo* t = r.tensor(rule.gguf)) return t->ne[k];
      break;
    }
  }
  return std::nullopt;
}

}  // namespace drivevqa::gguf_check
