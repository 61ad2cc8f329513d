// The Qwen2.5-VL tensor table in-process: names, shapes and LoRA mapping for a preset, spelled out
// here independently of the table (the byte-identity tests compare the writers and the converter).
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "qwen25vl/tensor_table.h"

namespace drivevqa {
namespace {

const QwenTensor* find(const std::vector<QwenTensor>& tensors, const std::string& gguf) {
  const auto it = std::find_if(tensors.begin(), tensors.end(), [&](const QwenTensor& t) { return t.gguf == gguf; });
  return it == tensors.end() ? nullptr : &*it;
}

TEST(UnitTensorTable, Vision7bIsQwen25Vl7bsVisionTowerBeforeTinysTextModel) {
  const ModelPreset& p = model_preset("vision7b");
  EXPECT_EQ(p.vision.hidden, 1280);
  EXPECT_EQ(p.vision.blocks, 32);
  EXPECT_EQ(p.vision.heads, 16);
  EXPECT_EQ(p.vision.ffn, 3420);
  std::vector<int> full;  // Qwen2.5-VL-7B's fullatt_block_indexes
  for (int i = p.vision.full_attention_every - 1; i < p.vision.blocks; i += p.vision.full_attention_every) full.push_back(i);
  EXPECT_EQ(full, (std::vector<int>{7, 15, 23, 31}));
  EXPECT_EQ(p.text.hidden, model_preset("tiny").text.hidden);
  const DimSizes sizes = dim_sizes(p.text, p.vision);
  const auto vision = written_tensors(Tower::kVision, sizes, p.vision.blocks);
  const QwenTensor* merger_out = find(vision, "mm.2.weight");
  ASSERT_NE(merger_out, nullptr);
  EXPECT_EQ(merger_out->ne.back(), p.text.hidden) << "the merger ends at the text model's width";
}

TEST(UnitTensorTable, TinyTextTowerHasEveryLayerAndTheRealShapes) {
  const ModelPreset& p = model_preset("tiny");
  const DimSizes sizes = dim_sizes(p.text, p.vision);
  const auto text = written_tensors(Tower::kText, sizes, p.text.layers);
  // embedding + 12 per layer + final norm + output head
  EXPECT_EQ(text.size(), 1u + 12u * static_cast<size_t>(p.text.layers) + 2u);
  EXPECT_EQ(text.front().gguf, "token_embd.weight");
  EXPECT_EQ(text.front().ne, (std::vector<int64_t>{p.text.hidden, p.text.vocab}));
  const QwenTensor* k = find(text, "blk.1.attn_k.weight");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->ne, (std::vector<int64_t>{p.text.hidden, p.text.kv_width()}));
  EXPECT_EQ(k->hf, "model.layers.1.self_attn.k_proj.weight");
  EXPECT_EQ(k->lora_module, "model.layers.1.self_attn.k_proj");
  EXPECT_EQ(k->block, 1);
  EXPECT_EQ(hf_shape(*k), (std::vector<int64_t>{p.text.kv_width(), p.text.hidden}));
  EXPECT_EQ(find(text, "blk.0.attn_qkv.weight"), nullptr) << "llama.cpp's fused form is accepted, never written";
  const auto tied = written_tensors(Tower::kText, sizes, p.text.layers, /*tied_embeddings=*/true);
  EXPECT_EQ(find(tied, "output.weight"), nullptr);
  EXPECT_EQ(tied.size() + 1, text.size());
}

TEST(UnitTensorTable, VisionTowerSlicesTheFusedAttentionAndThePatchKernel) {
  const ModelPreset& p = model_preset("tiny");
  const auto vision = written_tensors(Tower::kVision, dim_sizes(p.text, p.vision), p.vision.blocks);
  const QwenTensor* v = find(vision, "v.blk.2.attn_v.weight");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->hf, "visual.blocks.2.attn.qkv.weight");
  EXPECT_EQ(v->rule->slice, HfSlice::kFusedRows);
  EXPECT_EQ(v->rule->part, 2);
  EXPECT_EQ(hf_shape(*v), (std::vector<int64_t>{3 * p.vision.hidden, p.vision.hidden}));
  const QwenTensor* tap = find(vision, "v.patch_embd.weight.1");
  ASSERT_NE(tap, nullptr);
  EXPECT_EQ(hf_shape(*tap), (std::vector<int64_t>{p.vision.hidden, 3, 2, p.vision.patch, p.vision.patch}));
  EXPECT_EQ(stored_type(*tap, GGML_TYPE_Q8_0), GGML_TYPE_F32);
  EXPECT_EQ(stored_type(*tap, GGML_TYPE_F16), GGML_TYPE_F16);
  const QwenTensor* merger = find(vision, "mm.2.weight");
  ASSERT_NE(merger, nullptr);
  EXPECT_EQ(merger->ne, (std::vector<int64_t>{4 * p.vision.hidden, p.text.hidden}));
  EXPECT_EQ(find(vision, "v.patch_embd.bias"), nullptr);
}

TEST(UnitTensorTable, StoredTypesKeepNormsAndBiasesInF32) {
  const ModelPreset& p = model_preset("tiny");
  const auto text = written_tensors(Tower::kText, dim_sizes(p.text, p.vision), p.text.layers);
  EXPECT_EQ(stored_type(*find(text, "blk.0.attn_norm.weight"), GGML_TYPE_Q8_0), GGML_TYPE_F32);
  EXPECT_EQ(stored_type(*find(text, "blk.0.attn_q.bias"), GGML_TYPE_F16), GGML_TYPE_F32);
  EXPECT_EQ(stored_type(*find(text, "blk.0.ffn_up.weight"), GGML_TYPE_Q8_0), GGML_TYPE_Q8_0);
  EXPECT_EQ(tensor_role("token_embd.weight"), TensorRole::kEmbedding);
  EXPECT_EQ(tensor_role("blk.17.ffn_down.weight"), TensorRole::kMatrix);
  EXPECT_EQ(tensor_role("blk.x.ffn_down.weight"), std::nullopt);
  EXPECT_EQ(tensor_role("nonsense"), std::nullopt);
}

TEST(UnitTensorTable, LoraModulesMapOntoTheirWeights) {
  const auto down = lora_targets("model.layers.27.mlp.down_proj");
  ASSERT_EQ(down.size(), 1u);
  EXPECT_EQ(down[0].gguf, "blk.27.ffn_down.weight");
  EXPECT_EQ(down[0].parts, 1);
  const auto qkv = lora_targets("visual.blocks.5.attn.qkv");
  ASSERT_EQ(qkv.size(), 3u);
  EXPECT_EQ(qkv[0].gguf, "v.blk.5.attn_q.weight");
  EXPECT_EQ(qkv[2].gguf, "v.blk.5.attn_v.weight");
  EXPECT_EQ(qkv[1].part, 1);
  EXPECT_EQ(qkv[1].parts, 3);
  EXPECT_EQ(lora_targets("lm_head").at(0).gguf, "output.weight");
  EXPECT_EQ(lora_targets("visual.merger.mlp.0").at(0).gguf, "mm.0.weight");
  const std::string long_name(5000, 'x');
  for (const std::string& unknown : {std::string("model.layers.3.self_attn.rotary_emb"), std::string("model.layers..mlp.up_proj"),
                                     std::string("model.embed_tokens"), std::string("model.layers.1a.mlp.up_proj"),
                                     std::string(), long_name}) {
    EXPECT_TRUE(lora_targets(unknown).empty()) << unknown;
  }
  EXPECT_TRUE(is_output_head("lm_head"));
  EXPECT_FALSE(is_output_head("model.layers.0.mlp.up_proj"));
  EXPECT_TRUE(is_vision_module("visual.blocks.0.attn.qkv"));
}

TEST(UnitTensorTable, LoraModuleWidthsStackAFusedModulesParts) {
  const ModelPreset& p = model_preset("tiny");
  const DimSizes sizes = dim_sizes(p.text, p.vision);
  const auto vision = lora_modules(Tower::kVision, sizes, p.vision.blocks);
  const auto qkv = std::find_if(vision.begin(), vision.end(), [](const auto& m) { return m.module == "visual.blocks.0.attn.qkv"; });
  ASSERT_NE(qkv, vision.end());
  EXPECT_EQ(qkv->in, p.vision.hidden);
  EXPECT_EQ(qkv->out, 3 * p.vision.hidden);
  EXPECT_TRUE(qkv->fused);
  EXPECT_TRUE(qkv->in_block);
  const auto text = lora_modules(Tower::kText, sizes, p.text.layers);
  std::set<std::string> names;
  for (const auto& m : text) names.insert(m.module);
  EXPECT_EQ(names.size(), text.size()) << "each module once";
  EXPECT_EQ(text.size(), 7u * static_cast<size_t>(p.text.layers) + 1u);  // 7 projections a layer + the head
}

TEST(UnitTensorTable, CheckpointLayoutsMapToTheHubLayoutAndBack) {
  EXPECT_EQ(hub_name("model.language_model.layers.0.mlp.up_proj.weight"), "model.layers.0.mlp.up_proj.weight");
  EXPECT_EQ(hub_name("model.visual.blocks.0.norm1.weight"), "visual.blocks.0.norm1.weight");
  EXPECT_EQ(hub_name("thinker.model.layers.0.input_layernorm.weight"), "model.layers.0.input_layernorm.weight");
  EXPECT_EQ(hub_name("lm_head.weight"), "lm_head.weight");
  for (const char* hub : {"model.layers.3.self_attn.o_proj.weight", "visual.merger.ln_q.weight", "lm_head.weight"}) {
    EXPECT_EQ(hub_name(new_layout_name(hub)), hub);
  }
  EXPECT_EQ(new_layout_name("visual.blocks.1.attn.qkv.bias"), "model.visual.blocks.1.attn.qkv.bias");
}

}  // namespace
}  // namespace drivevqa
