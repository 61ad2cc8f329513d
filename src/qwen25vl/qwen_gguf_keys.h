// The GGUF metadata of a Qwen2.5-VL pair, written the same way by make-model and by the Hugging
// Face converter (shared/docs/qwen25vl-gguf.md §2.1 and §3.1).
#pragma once

#include <array>
#include <optional>
#include <string>

#include "qwen25vl/gguf_stream_writer.h"
#include "qwen25vl/presets.h"
#include "qwen25vl/qwen_vocab.h"

namespace drivevqa {

struct TextModelKeys {
  std::string name;
  ggml_type weight_type = GGML_TYPE_F32;
  TextShape shape{};
  const QwenVocab* vocab = nullptr;
  std::optional<int32_t> bos, eos, pad;
  std::string chat_template;
};

struct VisionModelKeys {
  std::string name;
  ggml_type weight_type = GGML_TYPE_F32;
  VisionShape shape{};
  int projection_dim = 0;  // the text model's embedding width
  std::array<float, 3> image_mean{0.48145466f, 0.4578275f, 0.40821073f};
  std::array<float, 3> image_std{0.26862954f, 0.26130258f, 0.27577711f};
};

void write_text_model_keys(GgufStreamWriter& writer, const TextModelKeys& keys);
void write_vision_model_keys(GgufStreamWriter& writer, const VisionModelKeys& keys);

}  // namespace drivevqa
