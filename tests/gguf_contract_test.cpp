// The generated model files against the GGUF contract of shared/docs/qwen25vl-gguf.md. Expected
// names and shapes are written out here independently of the generator's own tensor plan.
#include <gguf.h>
#include <gtest/gtest.h>

#include <map>
#include <numeric>

#include "qwen25vl/presets.h"
#include "modelgen/random_model.h"
#include "support/test_support.h"

namespace drivevqa {
namespace {

struct GgufFile {
  explicit GgufFile(const std::filesystem::path& path) {
    gguf_init_params params{true, nullptr};
    ctx = gguf_init_from_file(path.c_str(), params);
  }
  ~GgufFile() { if (ctx) gguf_free(ctx); }
  gguf_context* ctx = nullptr;

  int64_t key(const char* name, gguf_type type) const {
    const int64_t id = gguf_find_key(ctx, name);
    EXPECT_GE(id, 0) << "missing key " << name;
    if (id >= 0) EXPECT_EQ(gguf_get_kv_type(ctx, id), type) << "wrong type for " << name;
    return id;
  }
  uint32_t u32(const char* name) const { const auto id = key(name, GGUF_TYPE_UINT32); return id < 0 ? 0 : gguf_get_val_u32(ctx, id); }
  std::string str(const char* name) const { const auto id = key(name, GGUF_TYPE_STRING); return id < 0 ? "" : gguf_get_val_str(ctx, id); }
  float f32(const char* name) const { const auto id = key(name, GGUF_TYPE_FLOAT32); return id < 0 ? 0 : gguf_get_val_f32(ctx, id); }
  bool boolean(const char* name) const { const auto id = key(name, GGUF_TYPE_BOOL); return id < 0 ? false : gguf_get_val_bool(ctx, id); }
  int64_t array(const char* name, gguf_type elem) const {
    const auto id = key(name, GGUF_TYPE_ARRAY);
    if (id < 0) return -1;
    EXPECT_EQ(gguf_get_arr_type(ctx, id), elem) << "wrong element type for " << name;
    return id;
  }
};

struct ExpectedTensor {
  std::vector<int64_t> ne;
  ggml_type type;
};

void expect_tensors(const GgufFile& f, const std::map<std::string, ExpectedTensor>& expected) {
  ASSERT_EQ(gguf_get_n_tensors(f.ctx), static_cast<int64_t>(expected.size()));
  gguf_init_params params{true, nullptr};
  (void)params;
  for (const auto& [name, want] : expected) {
    const int64_t id = gguf_find_tensor(f.ctx, name.c_str());
    ASSERT_GE(id, 0) << "missing tensor " << name;
    EXPECT_EQ(gguf_get_tensor_type(f.ctx, id), want.type) << name;
    // The container stores ne; its size must match the declared shape and type.
    int64_t count = std::accumulate(want.ne.begin(), want.ne.end(), int64_t{1}, std::multiplies<>());
    EXPECT_EQ(gguf_get_tensor_size(f.ctx, id), ggml_row_size(want.type, want.ne[0]) * (count / want.ne[0])) << name;
  }
}

std::map<std::string, ExpectedTensor> expected_text(const ModelPreset& p, ggml_type w) {
  const int64_t h = p.text.hidden, kv = p.text.kv_heads * (p.text.hidden / p.text.heads), ff = p.text.ffn, v = p.text.vocab;
  std::map<std::string, ExpectedTensor> t{{"token_embd.weight", {{h, v}, w}},
                                          {"output_norm.weight", {{h}, GGML_TYPE_F32}},
                                          {"output.weight", {{h, v}, w}}};
  for (int i = 0; i < p.text.layers; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    t[b + "attn_norm.weight"] = {{h}, GGML_TYPE_F32};
    t[b + "attn_q.weight"] = {{h, h}, w};
    t[b + "attn_q.bias"] = {{h}, GGML_TYPE_F32};
    t[b + "attn_k.weight"] = {{h, kv}, w};
    t[b + "attn_k.bias"] = {{kv}, GGML_TYPE_F32};
    t[b + "attn_v.weight"] = {{h, kv}, w};
    t[b + "attn_v.bias"] = {{kv}, GGML_TYPE_F32};
    t[b + "attn_output.weight"] = {{h, h}, w};
    t[b + "ffn_norm.weight"] = {{h}, GGML_TYPE_F32};
    t[b + "ffn_gate.weight"] = {{h, ff}, w};
    t[b + "ffn_up.weight"] = {{h, ff}, w};
    t[b + "ffn_down.weight"] = {{ff, h}, w};
  }
  EXPECT_EQ(t.size(), 3u + 12u * p.text.layers);
  return t;
}

std::map<std::string, ExpectedTensor> expected_vision(const ModelPreset& p, ggml_type w) {
  const int64_t h = p.vision.hidden, ff = p.vision.ffn, m = 4 * p.vision.hidden, out = p.text.hidden;
  const ggml_type patch = w == GGML_TYPE_F16 ? GGML_TYPE_F16 : GGML_TYPE_F32;
  std::map<std::string, ExpectedTensor> t{{"v.patch_embd.weight", {{14, 14, 3, h}, patch}},
                                          {"v.patch_embd.weight.1", {{14, 14, 3, h}, patch}},
                                          {"v.post_ln.weight", {{h}, GGML_TYPE_F32}},
                                          {"mm.0.weight", {{m, m}, w}},
                                          {"mm.0.bias", {{m}, GGML_TYPE_F32}},
                                          {"mm.2.weight", {{m, out}, w}},
                                          {"mm.2.bias", {{out}, GGML_TYPE_F32}}};
  for (int i = 0; i < p.vision.blocks; ++i) {
    const std::string b = "v.blk." + std::to_string(i) + ".";
    for (const char* n : {"ln1.weight", "ln2.weight"}) t[b + n] = {{h}, GGML_TYPE_F32};
    for (const char* n : {"attn_q", "attn_k", "attn_v", "attn_out"}) {
      t[b + n + ".weight"] = {{h, h}, w};
      t[b + n + ".bias"] = {{h}, GGML_TYPE_F32};
    }
    t[b + "ffn_gate.weight"] = {{h, ff}, w};
    t[b + "ffn_gate.bias"] = {{ff}, GGML_TYPE_F32};
    t[b + "ffn_up.weight"] = {{h, ff}, w};
    t[b + "ffn_up.bias"] = {{ff}, GGML_TYPE_F32};
    t[b + "ffn_down.weight"] = {{ff, h}, w};
    t[b + "ffn_down.bias"] = {{h}, GGML_TYPE_F32};
  }
  EXPECT_EQ(t.size(), 2u + 16u * p.vision.blocks + 5u);
  return t;
}

void check_text_file(const std::filesystem::path& path, const ModelPreset& p, ggml_type w) {
  GgufFile f(path);
  ASSERT_NE(f.ctx, nullptr);
  EXPECT_EQ(f.str("general.architecture"), "qwen2vl");
  EXPECT_EQ(f.str("general.type"), "model");
  EXPECT_EQ(f.u32("general.quantization_version"), 2u);
  EXPECT_EQ(f.u32("general.file_type"), w == GGML_TYPE_F32 ? 0u : w == GGML_TYPE_F16 ? 1u : 32u);
  EXPECT_EQ(f.u32("qwen2vl.block_count"), static_cast<uint32_t>(p.text.layers));
  EXPECT_GT(f.u32("qwen2vl.context_length"), 0u);
  EXPECT_EQ(f.u32("qwen2vl.embedding_length"), static_cast<uint32_t>(p.text.hidden));
  EXPECT_EQ(f.u32("qwen2vl.feed_forward_length"), static_cast<uint32_t>(p.text.ffn));
  EXPECT_EQ(f.u32("qwen2vl.attention.head_count"), static_cast<uint32_t>(p.text.heads));
  EXPECT_EQ(f.u32("qwen2vl.attention.head_count_kv"), static_cast<uint32_t>(p.text.kv_heads));
  const int64_t sections = f.array("qwen2vl.rope.dimension_sections", GGUF_TYPE_INT32);
  ASSERT_GE(sections, 0);
  ASSERT_EQ(gguf_get_arr_n(f.ctx, sections), 4u);
  const int32_t* s = static_cast<const int32_t*>(gguf_get_arr_data(f.ctx, sections));
  EXPECT_EQ(s[0] + s[1] + s[2] + s[3], p.text.hidden / p.text.heads / 2);
  EXPECT_EQ(f.f32("qwen2vl.rope.freq_base"), 1000000.0f);
  EXPECT_GT(f.f32("qwen2vl.attention.layer_norm_rms_epsilon"), 0.0f);
  EXPECT_EQ(f.str("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(f.str("tokenizer.ggml.pre"), "qwen2");
  const int64_t tokens = f.array("tokenizer.ggml.tokens", GGUF_TYPE_STRING);
  const int64_t types = f.array("tokenizer.ggml.token_type", GGUF_TYPE_INT32);
  EXPECT_GT(gguf_get_arr_n(f.ctx, f.array("tokenizer.ggml.merges", GGUF_TYPE_STRING)), 100000u);
  ASSERT_EQ(gguf_get_arr_n(f.ctx, tokens), static_cast<size_t>(p.text.vocab));
  ASSERT_EQ(gguf_get_arr_n(f.ctx, types), static_cast<size_t>(p.text.vocab));
  const int32_t* type = static_cast<const int32_t*>(gguf_get_arr_data(f.ctx, types));
  const std::map<int, std::pair<std::string, int32_t>> specials = {
      {151643, {"<|endoftext|>", 3}}, {151644, {"<|im_start|>", 3}}, {151645, {"<|im_end|>", 3}},
      {151652, {"<|vision_start|>", 3}}, {151653, {"<|vision_end|>", 3}}, {151655, {"<|image_pad|>", 3}},
      {151657, {"<tool_call>", 4}}, {151664, {"<|file_sep|>", 3}}, {151665, {"[PAD151665]", 5}}, {0, {"!", 1}}};
  for (const auto& [id, want] : specials) {
    EXPECT_EQ(gguf_get_arr_str(f.ctx, tokens, id), want.first) << id;
    EXPECT_EQ(type[id], want.second) << id;
  }
  EXPECT_EQ(f.u32("tokenizer.ggml.eos_token_id"), 151645u);
  EXPECT_EQ(f.u32("tokenizer.ggml.bos_token_id"), 151643u);
  EXPECT_EQ(f.u32("tokenizer.ggml.padding_token_id"), 151643u);
  EXPECT_NE(f.str("tokenizer.chat_template").find("<|im_start|>"), std::string::npos);
  expect_tensors(f, expected_text(p, w));
}

void check_vision_file(const std::filesystem::path& path, const ModelPreset& p, ggml_type w) {
  GgufFile f(path);
  ASSERT_NE(f.ctx, nullptr);
  EXPECT_EQ(f.str("general.architecture"), "clip");
  EXPECT_EQ(f.str("general.type"), "mmproj");
  EXPECT_TRUE(f.boolean("clip.has_vision_encoder"));
  EXPECT_EQ(f.str("clip.projector_type"), "qwen2.5vl_merger");
  EXPECT_TRUE(f.boolean("clip.use_silu"));
  const uint32_t pattern = f.u32("clip.vision.n_wa_pattern");
  EXPECT_GT(pattern, 1u);  // 1 would put full attention at block 0, which the engine rejects
  EXPECT_EQ(p.vision.blocks % pattern, 0u);
  EXPECT_GT(f.f32("clip.vision.attention.layer_norm_epsilon"), 0.0f);
  EXPECT_EQ(f.u32("clip.vision.projection_dim"), static_cast<uint32_t>(p.text.hidden));
  EXPECT_EQ(f.u32("clip.vision.image_size"), 560u);
  EXPECT_EQ(f.u32("clip.vision.patch_size"), 14u);
  EXPECT_EQ(f.u32("clip.vision.embedding_length"), static_cast<uint32_t>(p.vision.hidden));
  EXPECT_EQ(f.u32("clip.vision.feed_forward_length"), static_cast<uint32_t>(p.vision.ffn));
  EXPECT_NE(p.vision.ffn, p.vision.hidden);
  EXPECT_EQ(f.u32("clip.vision.block_count"), static_cast<uint32_t>(p.vision.blocks));
  EXPECT_EQ(f.u32("clip.vision.attention.head_count"), static_cast<uint32_t>(p.vision.heads));
  for (const char* k : {"clip.vision.image_mean", "clip.vision.image_std"}) {
    const int64_t id = f.array(k, GGUF_TYPE_FLOAT32);
    ASSERT_GE(id, 0);
    EXPECT_EQ(gguf_get_arr_n(f.ctx, id), 3u);
  }
  expect_tensors(f, expected_vision(p, w));
}

TEST(GgufContract, TinyFixtureMatchesTheContract) {
  check_text_file(test::tiny_model_dir() / "model.gguf", model_preset("tiny"), GGML_TYPE_F32);
  check_vision_file(test::tiny_model_dir() / "mmproj.gguf", model_preset("tiny"), GGML_TYPE_F32);
}

TEST(GgufContract, SmallPresetInF16MatchesTheContract) {
  const auto dir = test::scratch_dir("small-f16");
  write_random_model(dir, {"small", 3, GGML_TYPE_F16});
  check_text_file(dir / "model.gguf", model_preset("small"), GGML_TYPE_F16);
  check_vision_file(dir / "mmproj.gguf", model_preset("small"), GGML_TYPE_F16);
  std::filesystem::remove_all(dir);
}

TEST(GgufContract, TinyInBF16MatchesTheContract) {
  const auto dir = test::scratch_dir("tiny-bf16");
  write_random_model(dir, {"tiny", 1, GGML_TYPE_BF16});
  check_text_file(dir / "model.gguf", model_preset("tiny"), GGML_TYPE_BF16);
  check_vision_file(dir / "mmproj.gguf", model_preset("tiny"), GGML_TYPE_BF16);
}

}  // namespace
}  // namespace drivevqa
