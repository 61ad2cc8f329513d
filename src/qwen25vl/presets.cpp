#include "qwen25vl/presets.h"

#include "util/error.h"

namespace drivevqa {

const ModelPreset& model_preset(const std::string& name) {
  static const ModelPreset kTiny{"tiny", TextShape{128, 2, 4, 2, 384, {4, 6, 6, 0}}, VisionShape{64, 4, 4, 96, 2}};
  static const ModelPreset kSmall{"small", TextShape{512, 8, 8, 2, 1536, {8, 12, 12, 0}},
                                  VisionShape{256, 8, 4, 704, 4}};
  if (name == "tiny") return kTiny;
  if (name == "small") return kSmall;
  throw UsageError("unknown model preset '" + name + "' (expected tiny or small)");
}

}  // namespace drivevqa
