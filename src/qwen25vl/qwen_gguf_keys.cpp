#include "qwen25vl/qwen_gguf_keys.h"

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

void write_common_keys(gguf_context* kv, const char* arch, const char* type, const std::string& name, ggml_type weight_type) {
  gguf_set_val_str(kv, "general.architecture", arch);
  gguf_set_val_str(kv, "general.type", type);
  gguf_set_val_str(kv, "general.name", name.c_str());
  gguf_set_val_u32(kv, "general.file_type", file_type_of(weight_type));
  gguf_set_val_u32(kv, "general.quantization_version", GGML_QNT_VERSION);
}

}  // namespace

void write_text_model_keys(GgufStreamWriter& w, const TextModelKeys& k) {
  gguf_context* kv = w.kv();
  const TextShape& t = k.shape;
  write_common_keys(kv, "qwen2vl", "model", k.name, k.weight_type);
  gguf_set_val_u32(kv, "qwen2vl.block_count", t.layers);
  gguf_set_val_u32(kv, "qwen2vl.context_length", t.context_length);
  gguf_set_val_u32(kv, "qwen2vl.embedding_length", t.hidden);
  gguf_set_val_u32(kv, "qwen2vl.feed_forward_length", t.ffn);
  gguf_set_val_u32(kv, "qwen2vl.attention.head_count", t.heads);
  gguf_set_val_u32(kv, "qwen2vl.attention.head_count_kv", t.kv_heads);
  gguf_set_arr_data(kv, "qwen2vl.rope.dimension_sections", GGUF_TYPE_INT32, t.rope_sections.data(), 4);
  gguf_set_val_f32(kv, "qwen2vl.rope.freq_base", t.rope_theta);
  gguf_set_val_f32(kv, "qwen2vl.attention.layer_norm_rms_epsilon", t.rms_eps);
  gguf_set_val_str(kv, "tokenizer.ggml.model", "gpt2");
  gguf_set_val_str(kv, "tokenizer.ggml.pre", "qwen2");
  w.set_string_array("tokenizer.ggml.tokens", k.vocab->tokens);
  gguf_set_arr_data(kv, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, k.vocab->types.data(), k.vocab->types.size());
  w.set_string_array("tokenizer.ggml.merges", k.vocab->merges);
  if (k.eos) gguf_set_val_u32(kv, "tokenizer.ggml.eos_token_id", static_cast<uint32_t>(*k.eos));
  if (k.pad) gguf_set_val_u32(kv, "tokenizer.ggml.padding_token_id", static_cast<uint32_t>(*k.pad));
  if (k.bos) gguf_set_val_u32(kv, "tokenizer.ggml.bos_token_id", static_cast<uint32_t>(*k.bos));
  if (!k.chat_template.empty()) gguf_set_val_str(kv, "tokenizer.chat_template", k.chat_template.c_str());
}

void write_vision_model_keys(GgufStreamWriter& w, const VisionModelKeys& k) {
  gguf_context* kv = w.kv();
  const VisionShape& v = k.shape;
  write_common_keys(kv, "clip", "mmproj", k.name, k.weight_type);
  gguf_set_val_bool(kv, "clip.has_vision_encoder", true);
  gguf_set_val_str(kv, "clip.projector_type", "qwen2.5vl_merger");
  gguf_set_val_bool(kv, "clip.use_silu", true);
  gguf_set_val_u32(kv, "clip.vision.n_wa_pattern", v.full_attention_every);
  gguf_set_val_f32(kv, "clip.vision.attention.layer_norm_epsilon", v.eps);
  gguf_set_val_u32(kv, "clip.vision.projection_dim", k.projection_dim);
  gguf_set_val_u32(kv, "clip.vision.image_size", v.image_size);
  gguf_set_val_u32(kv, "clip.vision.patch_size", v.patch);
  gguf_set_val_u32(kv, "clip.vision.embedding_length", v.hidden);
  gguf_set_val_u32(kv, "clip.vision.feed_forward_length", v.ffn);
  gguf_set_val_u32(kv, "clip.vision.block_count", v.blocks);
  gguf_set_val_u32(kv, "clip.vision.attention.head_count", v.heads);
  gguf_set_arr_data(kv, "clip.vision.image_mean", GGUF_TYPE_FLOAT32, k.image_mean.data(), 3);
  gguf_set_arr_data(kv, "clip.vision.image_std", GGUF_TYPE_FLOAT32, k.image_std.data(), 3);
}

}  // namespace drivevqa
