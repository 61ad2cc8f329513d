// The vision model (clip, qwen2.5vl_merger) checks of engine/gguf_check.h: the facts are from
// clip.cpp (clip_model_loader: its key getters assert the key's type; load_tensors checks no shape),
// tools/mtmd/models/qwen2vl.cpp (the graph) and mtmd.cpp (projection width vs text width).
#include <cmath>

#include "engine/gguf_check.h"
#include "engine/gguf_check_reader.h"

namespace drivevqa {
namespace {

using gguf_check::GgufReader;
using gguf_check::printable;
using gguf_check::Shape;
using gguf_check::TensorUse;

// clip.cpp's window for qwen2.5vl is 112 pixels of 2x2 merged patches; it is not read from the
// file. A larger patch makes the window 0 merged tokens wide and its loop never ends.
constexpr uint32_t kMaxPatchSize = 112 / 2;
constexpr uint32_t kMaxImageSize = 8192;  // clip.cpp refuses larger
constexpr uint32_t kMergeSize = 2;        // the qwen2.5vl graph merges 2x2 patches whatever the file says

struct VisionHparams {
  int64_t width = 0, heads = 0, ffn = 0, blocks = 0, patch = 0, projection = 0;
};

// Keys clip.cpp reads with getters that assert the key's GGUF type (a wrong type aborts).
void check_key_types(const GgufReader& r) {
  for (const char* key : {"general.name", "general.description", "clip.vision.mm_patch_merge_type"}) r.string(key);
  for (const char* key : {"clip.has_audio_encoder", "clip.has_gen_audio_encoder", "clip.use_gelu", "clip.use_silu"}) r.boolean(key);
  r.expect_type("clip.minicpmv_version", GGUF_TYPE_INT32);
  r.u32("clip.minicpmv_query_num");
}

void check_identity(const GgufReader& r) {
  const std::string arch = r.string("general.architecture").value_or("");
  if (arch != "clip") r.fail("vision model (mmproj) has architecture '" + printable(arch) + "', expected 'clip'");
  const std::string projector = r.string("clip.projector_type").value_or("");
  if (projector != "qwen2.5vl_merger") r.fail("vision projector is '" + printable(projector) + "', expected 'qwen2.5vl_merger'");
  if (r.boolean("clip.has_vision_encoder") != true) r.fail("clip.has_vision_encoder is not true: there is no vision encoder to load");
  check_key_types(r);
}

void check_attention(const GgufReader& r, const VisionHparams& h) {
  if (h.width % h.heads != 0) {
    r.fail("clip.vision.attention.head_count " + std::to_string(h.heads) + " does not divide clip.vision.embedding_length " + std::to_string(h.width));
  }
  // The vision M-RoPE rotates head_dim/2 values in four equal sections (ggml asserts each is set).
  const int64_t head_dim = h.width / h.heads;
  if (head_dim % 4 != 0) {
    r.fail("the vision head dimension " + std::to_string(head_dim) + " (embedding_length / head_count) is not a multiple of 4");
  }
  const auto given_dim = r.u32("clip.vision.attention.head_dim");
  if (given_dim && *given_dim != head_dim) {
    r.fail("clip.vision.attention.head_dim is " + std::to_string(*given_dim) + ", expected " + std::to_string(head_dim) + " (embedding_length / head_count)");
  }
  const auto kv_heads = r.u32("clip.vision.attention.head_count_kv");
  if (kv_heads && *kv_heads != h.heads) {
    r.fail("clip.vision.attention.head_count_kv is " + std::to_string(*kv_heads) + ", expected head_count " + std::to_string(h.heads) + " (no grouped heads)");
  }
}

void check_image_keys(const GgufReader& r, uint32_t window_pattern) {
  if (r.required_u32("clip.vision.image_size") > kMaxImageSize) {
    r.fail("clip.vision.image_size is more than " + std::to_string(kMaxImageSize));
  }
  // 1 marks every block full attention yet asks for the window inputs, which the graph then lacks.
  if (window_pattern == 1) r.fail("clip.vision.n_wa_pattern is 1, expected 0 (no window attention) or at least 2");
  const auto merge = r.u32("clip.vision.spatial_merge_size");
  if (merge && *merge != kMergeSize) r.fail("clip.vision.spatial_merge_size is " + std::to_string(*merge) + ", expected 2 (the graph merges 2x2 patches)");
  const float eps = r.non_negative_f32("clip.vision.attention.layer_norm_epsilon").value_or(-1);
  if (eps < 0) r.fail("clip.vision.attention.layer_norm_epsilon is missing (a FLOAT32)");
  for (const std::string key : {"clip.vision.image_mean", "clip.vision.image_std"}) {
    const std::vector<float> values = r.f32_array(key);
    if (values.size() < 3) r.fail(key + " has " + std::to_string(static_cast<int64_t>(values.size())) + " values, expected 3");
    const bool divisor = key.back() == 'd';  // pixels are divided by the std
    for (size_t i = 0; i < 3; ++i) {
      if (!std::isfinite(values[i]) || (divisor && values[i] == 0)) {
        r.fail(key + "[" + std::to_string(static_cast<int64_t>(i)) + "] is " + std::to_string(values[i]));
      }
    }
  }
}

VisionHparams read_vision_hparams(const GgufReader& r, std::optional<int64_t> text_width) {
  VisionHparams h;
  h.width = r.positive_u32("clip.vision.embedding_length");
  h.heads = r.positive_u32("clip.vision.attention.head_count");
  check_attention(r, h);
  h.ffn = r.positive_u32("clip.vision.feed_forward_length");
  // clip.cpp swaps ffn_up and ffn_down when ffn_down's input is the width (a fix for old files):
  // with equal widths it would swap a correct file and compute a wrong MLP.
  if (h.ffn == h.width) r.fail("clip.vision.feed_forward_length equals embedding_length " + std::to_string(h.width) + "; they must differ");
  h.blocks = r.positive_u32("clip.vision.block_count");
  h.projection = r.positive_u32("clip.vision.projection_dim");
  if (text_width && h.projection != *text_width) {
    r.fail("clip.vision.projection_dim is " + std::to_string(h.projection) + " but the text model's embedding width is " + std::to_string(*text_width) +
           " (an mmproj for another model?)");
  }
  const uint32_t window_pattern = r.required_u32("clip.vision.n_wa_pattern");
  h.patch = r.required_u32("clip.vision.patch_size");
  if (h.patch == 0 || h.patch > kMaxPatchSize) {
    r.fail("clip.vision.patch_size is " + std::to_string(h.patch) + ", expected 1.." + std::to_string(kMaxPatchSize) +
           " (clip.cpp's 112-pixel attention window holds 2x2 patches)");
  }
  check_image_keys(r, window_pattern);
  return h;
}

// The merger's mm.0 takes the 2x2-merged patches (4 x width); its hidden width is the file's own;
// mm.2 gives projection_dim, the text width.
void check_vision_tensors(const GgufReader& r, const VisionHparams& h) {
  const int64_t w = h.width;
  const std::string width = "embedding_length " + std::to_string(w);
  gguf_check::TableDims dims;
  dims.set(Dim::kThree, 3, "3");
  dims.set(Dim::kVisionWidth, w, width);
  dims.set(Dim::kVisionFfn, h.ffn, "feed_forward_length " + std::to_string(h.ffn));
  dims.set(Dim::kPatch, h.patch, "patch_size " + std::to_string(h.patch));
  dims.set(Dim::kMergerIn, 4 * w, "4 x " + width);
  const int64_t hidden = gguf_check::size_in_file(r, Tower::kVision, Dim::kMergerHidden).value_or(4 * w);
  dims.set(Dim::kMergerHidden, hidden, "merger width " + std::to_string(hidden));
  dims.set(Dim::kProjection, h.projection, "projection_dim " + std::to_string(h.projection));
  gguf_check::check_tower_tensors(r, Tower::kVision, dims, h.blocks);
}

}  // namespace

void check_vision_model(const gguf_context* gguf, const std::string& file, std::optional<int64_t> text_width) {
  const GgufReader r(gguf, file);
  check_identity(r);
  r.expect_sane_tensors();
  check_vision_tensors(r, read_vision_hparams(r, text_width));
}

}  // namespace drivevqa
