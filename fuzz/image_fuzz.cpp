// The image loader (engine/image.h): JPEG / PNG bytes decoded as they are, and resized to a model
// size with the scaled-decode path (engine/image_resize.h).
#include "engine/image.h"
#include "engine/image_resize.h"
#include "fuzz/fuzz_target.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  drivevqa::ImageSizing small;
  small.max_pixels = 28 * 28 * 16;  // shrinks most inputs: the DCT-scaled decode
  const drivevqa::ImageSizing* const sizings[] = {nullptr, &small};
  for (const drivevqa::ImageSizing* sizing : sizings) {
    try {
      const drivevqa::RgbImage image = drivevqa::decode_image(data, size, "fuzz-image", sizing);
      if (image.pixels.size() != image.byte_size()) __builtin_trap();
    } catch (const drivevqa::Error&) {
    }
  }
  return 0;
}
