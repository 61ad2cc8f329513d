// The Qwen2.5-VL image processor's sizing, done by drivevqa so that the engine gets each camera image
// at exactly the size the Hugging Face processor would give it (stretched, never padded).
//
// What must hold: the target size is a multiple of `factor` in both directions and, where the image
// allows it, its area lies within [min_pixels, max_pixels] (the processor's smart_resize).
#pragma once

#include <cstdint>

#include "engine/image.h"

namespace drivevqa {

struct ImageSizing {
  int64_t min_pixels = 3136;       // 4 image tokens (the processor's default)
  int64_t max_pixels = 12845056;   // 16384 image tokens (the processor's default)
  int factor = 28;                 // patch 14 x merge 2: one image token per 28x28 pixels

  int64_t tokens_for(int64_t pixels) const { return pixels / (int64_t{factor} * factor); }
};

struct PixelSize {
  int width = 0;
  int height = 0;
  bool operator==(const PixelSize&) const = default;
};

// smart_resize: round each side to the factor, then scale into the pixel range keeping the aspect ratio.
PixelSize qwen_target_size(int width, int height, const ImageSizing& sizing);

// Separable bicubic resampling (a = -0.5, widened support when shrinking, as Pillow's BICUBIC does).
RgbImage resize_bicubic(const RgbImage& image, PixelSize size);

}  // namespace drivevqa
