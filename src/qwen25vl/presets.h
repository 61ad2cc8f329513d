// Shapes of the random-weight Qwen2.5-VL models drivevqa makes for tests and benchmarks.
//
// All keep the real architecture (M-RoPE text model, windowed RMSNorm/SwiGLU vision tower,
// 2x2 merger) and the real Qwen2 vocabulary; only widths and depths are small.
//   tiny : text 128 wide, 2 layers, 4 heads (2 KV), FFN 384; vision 64 wide, 4 blocks, 4 heads,
//          FFN 96, full attention in blocks 1 and 3. For tests: a question in seconds.
//   small: text 512 wide, 8 layers, 8 heads (2 KV), FFN 1536; vision 256 wide, 8 blocks, 4 heads,
//          FFN 704, full attention in blocks 3 and 7. For benchmarks.
//   vision7b: tiny's text model after Qwen2.5-VL-7B's exact vision tower (1280 wide, 32 blocks,
//          16 heads, FFN 3420, full attention in blocks 7, 15, 23, 31; ~630M weights). For
//          measuring image encoding at its real cost (bench/vision.sh).
#pragma once

#include <array>
#include <string>

#include <ggml.h>

namespace drivevqa {

struct TextShape {
  int hidden;
  int layers;
  int heads;
  int kv_heads;
  int ffn;
  std::array<int, 4> rope_sections;  // t, h, w, unused; sums to head_dim / 2
  int vocab = 151936;
  int context_length = 32768;
  float rope_theta = 1000000.0f;
  float rms_eps = 1e-6f;

  int head_dim() const { return hidden / heads; }
  int kv_width() const { return kv_heads * head_dim(); }
};

struct VisionShape {
  int hidden;
  int blocks;
  int heads;
  int ffn;                 // must differ from hidden (clip.cpp swaps up/down otherwise)
  int full_attention_every;  // blocks k-1, 2k-1, ... use full attention; the rest windowed
  int patch = 14;
  int image_size = 560;    // nominal; the engine resizes dynamically
  float eps = 1e-6f;
};

struct ModelPreset {
  std::string name;
  TextShape text;
  VisionShape vision;
};

// Throws UsageError for an unknown name.
const ModelPreset& model_preset(const std::string& name);

}  // namespace drivevqa
