#include "engine/image.h"

#include "engine/image_resize.h"

#include <png.h>
#include <turbojpeg.h>

#include <cstring>
#include <memory>
#include <new>

#include "util/error.h"
#include "util/files.h"

namespace drivevqa {
namespace {

struct TjDeleter {
  void operator()(void* handle) const { tjDestroy(handle); }
};
using TjHandle = std::unique_ptr<void, TjDeleter>;

void check_pixel_count(int64_t width, int64_t height, const std::string& name) {
  if (width <= 0 || height <= 0) throw InputError(name + ": image has no pixels");
  if (width * height > kMaxImagePixels) {
    throw InputError(name + ": image is " + std::to_string(width) + "x" + std::to_string(height) +
                     ", more than the limit of " + std::to_string(kMaxImagePixels) + " pixels");
  }
}

// The smallest DCT scale of at most 1/2 that still yields at least `target` in both directions;
// 1/1 when the target is more than half the size.
tjscalingfactor jpeg_scale_for(int width, int height, PixelSize target) {
  tjscalingfactor best{1, 1};
  int count = 0;
  const tjscalingfactor* factors = tjGetScalingFactors(&count);
  for (int i = 0; factors && i < count; ++i) {
    const tjscalingfactor f = factors[i];
    if (2 * f.num > f.denom) continue;
    if (TJSCALED(width, f) < target.width || TJSCALED(height, f) < target.height) continue;
    if (f.num * best.denom < best.num * f.denom) best = f;
  }
  return best;
}

RgbImage decode_jpeg(const uint8_t* data, size_t size, const std::string& name, const ImageSizing* sizing,
                     PixelSize& stored) {
  TjHandle tj(tjInitDecompress());
  if (!tj) throw InputError(name + ": cannot start JPEG decoder");
  int width = 0, height = 0, subsamp = 0, colorspace = 0;
  if (tjDecompressHeader3(tj.get(), data, static_cast<unsigned long>(size), &width, &height, &subsamp,
                          &colorspace) != 0) {
    throw InputError(name + ": not a readable JPEG (" + tjGetErrorStr2(tj.get()) + ")");
  }
  if (width <= 0 || height <= 0) throw InputError(name + ": not a readable JPEG (incomplete header)");
  check_pixel_count(width, height, name);
  stored = {width, height};
  if (sizing) {
    const tjscalingfactor scale = jpeg_scale_for(width, height, qwen_target_size(width, height, *sizing));
    width = TJSCALED(width, scale);
    height = TJSCALED(height, scale);
  }
  RgbImage image{width, height, {}};
  const bool cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
  std::vector<uint8_t> cmyk_pixels;
  if (cmyk) {
    cmyk_pixels.resize(static_cast<size_t>(width) * height * 4);
  } else {
    image.pixels.resize(image.byte_size());
  }
  uint8_t* target = cmyk ? cmyk_pixels.data() : image.pixels.data();
  const int format = cmyk ? TJPF_CMYK : TJPF_RGB;
  // Warnings (truncated data, bad markers) count as corruption: a half-grey frame is not an answerable image.
  if (tjDecompress2(tj.get(), data, static_cast<unsigned long>(size), target, width, 0, height, format,
                    TJFLAG_STOPONWARNING) != 0) {
    throw InputError(name + ": corrupt JPEG (" + tjGetErrorStr2(tj.get()) + ")");
  }
  if (cmyk) {
    // Adobe CMYK JPEGs store inverted values; libjpeg hands them back as stored.
    image.pixels.resize(image.byte_size());
    for (size_t i = 0, n = static_cast<size_t>(width) * height; i < n; ++i) {
      const unsigned k = cmyk_pixels[4 * i + 3];
      for (int c = 0; c < 3; ++c) image.pixels[3 * i + c] = static_cast<uint8_t>(cmyk_pixels[4 * i + c] * k / 255);
    }
  }
  return image;
}

RgbImage decode_png(const uint8_t* data, size_t size, const std::string& name) {
  png_image png;
  std::memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&png, data, size)) {
    throw InputError(name + ": not a readable PNG (" + png.message + ")");
  }
  // From here libpng holds memory until png_image_free, whichever way this function ends.
  struct Release {
    png_image* p;
    ~Release() { png_image_free(p); }
  } release{&png};
  check_pixel_count(png.width, png.height, name);
  png.format = PNG_FORMAT_RGB;
  RgbImage image{static_cast<int>(png.width), static_cast<int>(png.height), {}};
  image.pixels.resize(image.byte_size());
  if (!png_image_finish_read(&png, nullptr, image.pixels.data(), 0, nullptr)) {
    throw InputError(name + ": corrupt PNG (" + png.message + ")");
  }
  return image;
}

}  // namespace

RgbImage decode_image(const uint8_t* data, size_t size, const std::string& name, const ImageSizing* sizing) {
  if (size == 0) throw InputError(name + ": image file is empty");
  static const uint8_t kPngMagic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  RgbImage image;
  PixelSize stored;
  if (size >= 8 && std::memcmp(data, kPngMagic, 8) == 0) {
    image = decode_png(data, size, name);
    stored = {image.width, image.height};
  } else if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) {
    image = decode_jpeg(data, size, name, sizing, stored);
  } else {
    throw InputError(name + ": not a JPEG or PNG image");
  }
  if (!sizing) return image;
  // The target comes from the stored size, so a DCT-scaled JPEG lands on the same size as a full decode.
  return resize_bicubic(image, qwen_target_size(stored.width, stored.height, *sizing));
}

RgbImage load_image_file(const std::filesystem::path& path, const ImageSizing* sizing) {
  try {
    const std::vector<uint8_t> bytes = read_file_bytes(path, {.max_bytes = kMaxImageFileBytes});
    return decode_image(bytes.data(), bytes.size(), path.string(), sizing);
  } catch (const std::bad_alloc&) {
    throw InputError(path.string() + ": out of memory while reading or decoding the image");
  }
}

std::vector<uint8_t> encode_jpeg(const RgbImage& image, int quality) {
  TjHandle tj(tjInitCompress());
  unsigned char* out = nullptr;
  unsigned long out_size = 0;
  if (!tj || tjCompress2(tj.get(), image.pixels.data(), image.width, 0, image.height, TJPF_RGB, &out, &out_size,
                         TJSAMP_420, quality, 0) != 0) {
    if (out) tjFree(out);
    throw Error(ExitCode::kFailure, "JPEG encoding failed");
  }
  std::vector<uint8_t> bytes(out, out + out_size);
  tjFree(out);
  return bytes;
}

std::vector<uint8_t> encode_png(const RgbImage& image) {
  png_image png;
  std::memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.width);
  png.height = static_cast<png_uint_32>(image.height);
  png.format = PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  if (!png_image_write_get_memory_size(png, size, 0, image.pixels.data(), 0, nullptr)) {
    throw Error(ExitCode::kFailure, std::string("PNG encoding failed: ") + png.message);
  }
  std::vector<uint8_t> bytes(size);
  if (!png_image_write_to_memory(&png, bytes.data(), &size, 0, image.pixels.data(), 0, nullptr)) {
    throw Error(ExitCode::kFailure, std::string("PNG encoding failed: ") + png.message);
  }
  bytes.resize(size);
  return bytes;
}

}  // namespace drivevqa
