// The text model (qwen2vl) checks of engine/gguf_check.h: the facts are from llama.cpp's
// llama_model_base::load_hparams, llama_model_qwen2vl::load_arch_tensors and its graph, and the
// vocabulary loader (llama-vocab.cpp).
#include <cmath>
#include <deque>
#include <set>
#include <string_view>
#include <unordered_map>

#include "engine/gguf_check.h"
#include "engine/gguf_check_reader.h"

namespace drivevqa {
namespace {

using gguf_check::GgufReader;
using gguf_check::printable;
using gguf_check::Shape;
using gguf_check::TensorUse;

constexpr uint32_t kMaxLayers = 512;   // LLAMA_MAX_LAYERS: load_hparams asserts block_count <= it
constexpr int64_t kGpt2DefaultSpecialId = 11;  // bos/eos when a gpt2 vocabulary names none

struct TextHparams {
  int64_t width = 0, layers = 0, heads = 0, kv_heads = 0, ffn = 0, head_dim = 0, vocab = 0;
  int64_t kv_width() const { return kv_heads * head_dim; }
};

int64_t required_per_layer(const GgufReader& r, const std::string& key, int64_t layers) {
  const auto v = r.per_layer_u32(key, static_cast<uint32_t>(layers));
  if (!v) r.fail(key + " is missing (a UINT32)");
  if (*v == 0) r.fail(key + " is 0, expected at least 1");
  return *v;
}

// head_dim is the graph's rope width: optional keys that override it must agree (the graph asserts
// n_embd_head_k == n_embd_head_v == n_rot, and Q is reshaped to head_count x head_dim).
void check_head_dim_keys(const GgufReader& r, int64_t head_dim) {
  for (const char* key : {"qwen2vl.attention.key_length", "qwen2vl.attention.value_length", "qwen2vl.rope.dimension_count"}) {
    const auto v = r.u32(key);
    if (v && *v != head_dim) {
      r.fail(std::string(key) + " is " + std::to_string(*v) + ", expected the head dimension " + std::to_string(head_dim) +
             " (embedding_length / head_count)");
    }
  }
}

void check_rope(const GgufReader& r, int64_t head_dim) {
  const std::string key = "qwen2vl.rope.dimension_sections";
  if (!r.has(key)) r.fail(key + " is missing (4 int32: the t, h, w and extra sections of M-RoPE)");
  const std::vector<int64_t> s = r.int_array(key);
  if (s.size() != 4) r.fail(key + " has " + std::to_string(static_cast<int64_t>(s.size())) + " values, expected 4");
  int64_t sum = 0;
  for (int64_t v : s) {
    if (v < 0 || v > 0x7fffffff) r.fail(key + " holds " + std::to_string(v) + ", expected sections of 0 or more");
    sum += v;
  }
  if (s[0] + s[1] + s[2] == 0) r.fail(key + " has no t, h or w section (ggml's M-RoPE asserts one is set)");
  if (sum * 2 != head_dim) {
    r.fail(key + " sums to " + std::to_string(sum) + ", expected half the head dimension " + std::to_string(head_dim) +
           " (embedding_length / head_count)");
  }
  const auto base = r.f32("qwen2vl.rope.freq_base");
  if (base && !(std::isfinite(*base) && *base > 0)) r.fail("qwen2vl.rope.freq_base is " + std::to_string(*base) + ", expected > 0");
  // load_hparams asserts the scaling type is one it knows.
  const auto scaling = r.string("qwen2vl.rope.scaling.type");
  if (scaling && *scaling != "none" && *scaling != "linear" && *scaling != "yarn" && *scaling != "longrope") {
    r.fail("qwen2vl.rope.scaling.type is '" + printable(*scaling) + "', expected none, linear, yarn or longrope");
  }
}

// qwen2vl is dense: load_hparams asserts on expert and next-token-layer counts it cannot use.
void check_dense(const GgufReader& r, int64_t layers) {
  for (const char* name : {"expert_count", "expert_used_count", "expert_group_count", "expert_group_used_count"}) {
    const std::string key = std::string("qwen2vl.") + name;
    if (r.has(key) && r.per_layer_u32(key, static_cast<uint32_t>(layers)).value_or(0) != 0) {
      r.fail(key + " is set, expected 0 or absent (qwen2vl is a dense model)");
    }
  }
  const auto nextn = r.u32("qwen2vl.nextn_predict_layers");
  if (nextn && *nextn > layers) r.fail("qwen2vl.nextn_predict_layers is " + std::to_string(*nextn) + ", more than block_count " + std::to_string(layers));
}

TextHparams read_text_hparams(const GgufReader& r) {
  TextHparams h;
  r.positive_u32("qwen2vl.context_length");
  h.width = r.positive_u32("qwen2vl.embedding_length");
  h.layers = r.positive_u32("qwen2vl.block_count", kMaxLayers);
  h.ffn = required_per_layer(r, "qwen2vl.feed_forward_length", h.layers);
  h.heads = required_per_layer(r, "qwen2vl.attention.head_count", h.layers);
  h.kv_heads = r.has("qwen2vl.attention.head_count_kv") ? required_per_layer(r, "qwen2vl.attention.head_count_kv", h.layers)
                                                        : h.heads;
  if (h.width % h.heads != 0) {
    r.fail("qwen2vl.attention.head_count " + std::to_string(h.heads) + " does not divide qwen2vl.embedding_length " + std::to_string(h.width));
  }
  if (h.heads % h.kv_heads != 0) {
    r.fail("qwen2vl.attention.head_count_kv " + std::to_string(h.kv_heads) + " does not divide qwen2vl.attention.head_count " + std::to_string(h.heads));
  }
  h.head_dim = h.width / h.heads;
  check_head_dim_keys(r, h.head_dim);
  check_rope(r, h.head_dim);
  check_dense(r, h.layers);
  r.non_negative_f32("qwen2vl.attention.layer_norm_rms_epsilon");
  return h;
}

// llama.cpp asserts every token string is unique (an empty one is renamed [EMPTY_<id>] first).
void check_unique_tokens(const GgufReader& r, size_t count) {
  const int64_t id = r.key_id("tokenizer.ggml.tokens");
  std::unordered_map<std::string_view, size_t> seen;
  seen.reserve(count);
  std::deque<std::string> renamed;
  for (size_t i = 0; i < count; ++i) {
    std::string_view word = gguf_get_arr_str(r.gguf(), id, i);
    if (word.empty()) word = renamed.emplace_back("[EMPTY_" + std::to_string(i) + "]");
    const auto [it, inserted] = seen.emplace(word, i);
    if (!inserted) {
      r.fail("tokenizer.ggml.tokens holds '" + printable(word) + "' twice (ids " + std::to_string(it->second) + " and " +
             std::to_string(i) + "); every token must be unique");
    }
  }
}

void check_special_token(const GgufReader& r, const char* key, std::optional<int64_t> fallback, int64_t vocab) {
  const auto given = r.u32(key);
  const std::optional<int64_t> id = given ? std::optional<int64_t>(*given) : fallback;
  if (id && *id >= vocab) {
    r.fail(std::string(key) + " is " + std::to_string(*id) + (given ? "" : " (gpt2's default)") + ", outside the " + std::to_string(vocab) + " tokens");
  }
}

int64_t check_tokenizer(const GgufReader& r) {
  const std::string model = r.string("tokenizer.ggml.model").value_or("");
  if (model != "gpt2") r.fail("tokenizer.ggml.model is '" + printable(model) + "', expected 'gpt2' (Qwen's byte-level BPE)");
  r.string("tokenizer.ggml.pre");
  const auto count = r.array_size("tokenizer.ggml.tokens", GGUF_TYPE_STRING);
  if (!count || *count == 0) r.fail("tokenizer.ggml.tokens is missing or empty");
  if (*count > 0x7fffffff) r.fail("tokenizer.ggml.tokens has more tokens than a token id can hold");
  const auto vocab = static_cast<int64_t>(*count);
  if (!r.array_size("tokenizer.ggml.merges", GGUF_TYPE_STRING)) r.fail("tokenizer.ggml.merges is missing (a BPE vocabulary needs them)");
  const auto types = r.array_size("tokenizer.ggml.token_type", GGUF_TYPE_INT32);
  if (types && *types < *count) r.fail("tokenizer.ggml.token_type has " + std::to_string(static_cast<int64_t>(*types)) + " entries for " + std::to_string(vocab) + " tokens");
  check_unique_tokens(r, *count);
  check_special_token(r, "tokenizer.ggml.bos_token_id", kGpt2DefaultSpecialId, vocab);
  check_special_token(r, "tokenizer.ggml.eos_token_id", kGpt2DefaultSpecialId, vocab);
  check_special_token(r, "tokenizer.ggml.padding_token_id", std::nullopt, vocab);
  r.boolean("tokenizer.ggml.add_bos_token");
  r.boolean("tokenizer.ggml.add_eos_token");
  return vocab;
}

// The tensors llama_model_qwen2vl::load_arch_tensors creates; the loader refuses any other.
void check_text_tensors(const GgufReader& r, const TextHparams& h) {
  const int64_t w = h.width, kv = h.kv_width();
  const std::string kv_why = "head_count_kv " + std::to_string(h.kv_heads) + " x head_dim " + std::to_string(h.head_dim);
  gguf_check::TableDims dims;
  dims.set(Dim::kTextWidth, w, "embedding_length " + std::to_string(w));
  dims.set(Dim::kKvWidth, kv, kv_why);
  dims.set(Dim::kQkvWidth, w + 2 * kv, "(width + 2 x " + kv_why + ")");
  dims.set(Dim::kTextFfn, h.ffn, "feed_forward_length " + std::to_string(h.ffn));
  dims.set(Dim::kVocab, h.vocab, std::to_string(h.vocab) + " tokens");
  const std::set<std::string> accepted = gguf_check::check_tower_tensors(r, Tower::kText, dims, h.layers);
  for (const auto& t : r.tensors()) {
    if (!accepted.count(t.name)) r.fail("has tensor " + t.name + ", which llama.cpp's qwen2vl loader does not create");
  }
}

}  // namespace

TextModelFacts check_text_model(const gguf_context* gguf, const std::string& file) {
  const GgufReader r(gguf, file);
  const std::string arch = r.string("general.architecture").value_or("");
  if (arch != "qwen2vl") r.fail("text model has architecture '" + printable(arch) + "', expected 'qwen2vl'");
  if (r.string("general.type") == "adapter") r.fail("is a LoRA adapter, not a text model");
  r.expect_sane_tensors();
  TextHparams h = read_text_hparams(r);
  h.vocab = check_tokenizer(r);
  check_text_tensors(r, h);
  TextModelFacts facts;
  facts.embedding_width = h.width;
  for (const auto& t : r.tensors()) facts.tensor_shapes[t.name] = t.ne;
  return facts;
}

}  // namespace drivevqa
