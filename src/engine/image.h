// Camera images as the engine sees them: 8-bit RGB pixels, decoded once from JPEG or PNG bytes.
//
// The format is taken from the bytes, never the file name (a PNG named .jpg decodes as PNG).
// Every failure throws InputError whose message starts with the image's name.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace drivevqa {

struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // width * height * 3, row-major, no padding

  size_t byte_size() const { return static_cast<size_t>(width) * height * 3; }
};

// Images with more pixels than this are refused before their pixels are decoded
// (a 1600x900 camera frame has 1.44 Mpx; 8192x8192 is the largest accepted square).
constexpr int64_t kMaxImagePixels = int64_t{8192} * 8192;

// Image files larger than this are refused before a byte is read (a 1600x900 camera JPEG is
// about 0.3 MB; an uncompressed 8192x8192 PNG is about 200 MB, a compressed one far less).
constexpr uint64_t kMaxImageFileBytes = uint64_t{64} << 20;

struct ImageSizing;  // engine/image_resize.h

// `name` is used in error messages only. With `sizing` the image comes back at the model's input
// size (image_resize.h); a JPEG that shrinks to at most half its size is decoded at a reduced DCT
// scale first, which is several times faster than a full decode.
RgbImage decode_image(const uint8_t* data, size_t size, const std::string& name, const ImageSizing* sizing = nullptr);
// Reads at most kMaxImageFileBytes (util/files.h). Running out of memory while reading or decoding
// is an InputError of this image too: the memory is free again, the other images can still be read.
RgbImage load_image_file(const std::filesystem::path& path, const ImageSizing* sizing = nullptr);

// Baseline JPEG, 4:2:0, for generated data (make-demo, tests).
std::vector<uint8_t> encode_jpeg(const RgbImage& image, int quality);
// PNG, for generated data (tests).
std::vector<uint8_t> encode_png(const RgbImage& image);

}  // namespace drivevqa
