#include "qwen25vl/presets.h"

#include "util/error.h"

namespace drivevqa {

const ModelPreset& model_preset(const std::string& name) {
  static const ModelPreset kTiny{"tiny", TextShape{128, 2, 4, 2, 384, {4, 6, 6, 0}}, VisionShape{64, 4, 4, 96, 2}};
  static const ModelPreset kSmall{"small", TextShape{512, 8, 8, 2, 1536, {8, 12, 12, 0}},
                                  VisionShape{256, 8, 4, 704, 4}};
  // Qwen2.5-VL-7B's vision tower exactly (32 blocks, 1280 wide, 16 heads, FFN 3420, full attention
  // in blocks 7, 15, 23, 31) before the tiny text model: the vision tower's real cost on any machine.
  static const ModelPreset kVision7b{"vision7b", kTiny.text, VisionShape{1280, 32, 16, 3420, 8}};
  if (name == "tiny") return kTiny;
  if (name == "small") return kSmall;
  if (name == "vision7b") return kVision7b;
  throw UsageError("unknown model preset '" + name + "' (expected tiny, small or vision7b)");
}

}  // namespace drivevqa
