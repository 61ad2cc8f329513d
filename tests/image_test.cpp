// Image decoding: formats by content, colour spaces, and clear errors for broken or oversized files.
#include <gtest/gtest.h>
#include <zlib.h>

#include <turbojpeg.h>

#include "engine/image.h"
#include "util/error.h"

namespace drivevqa {
namespace {

RgbImage gradient(int w, int h) {
  RgbImage img{w, h, {}};
  img.pixels.resize(img.byte_size());
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &img.pixels[(static_cast<size_t>(y) * w + x) * 3];
      p[0] = static_cast<uint8_t>(x * 255 / w);
      p[1] = static_cast<uint8_t>(y * 255 / h);
      p[2] = 128;
    }
  return img;
}

std::string error_of(const std::vector<uint8_t>& bytes, const std::string& name) {
  try {
    decode_image(bytes.data(), bytes.size(), name);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(Image, PngRoundTripIsExact) {
  const RgbImage img = gradient(64, 48);
  const auto png = encode_png(img);
  const RgbImage back = decode_image(png.data(), png.size(), "a.png");
  EXPECT_EQ(back.width, 64);
  EXPECT_EQ(back.height, 48);
  EXPECT_EQ(back.pixels, img.pixels);
}

TEST(Image, JpegRoundTripIsClose) {
  const RgbImage img = gradient(160, 90);
  const auto jpeg = encode_jpeg(img, 95);
  const RgbImage back = decode_image(jpeg.data(), jpeg.size(), "a.jpg");
  ASSERT_EQ(back.byte_size(), img.byte_size());
  int worst = 0;
  for (size_t i = 0; i < img.pixels.size(); ++i) worst = std::max(worst, std::abs(img.pixels[i] - back.pixels[i]));
  EXPECT_LT(worst, 24);
}

TEST(Image, FormatComesFromTheBytesNotTheName) {
  const auto png = encode_png(gradient(8, 8));
  EXPECT_EQ(decode_image(png.data(), png.size(), "named_like.jpg").width, 8);
}

TEST(Image, GrayscaleJpegBecomesRgb) {
  const RgbImage img = gradient(32, 32);
  tjhandle tj = tjInitCompress();
  unsigned char* out = nullptr;
  unsigned long size = 0;
  ASSERT_EQ(tjCompress2(tj, img.pixels.data(), 32, 0, 32, TJPF_RGB, &out, &size, TJSAMP_GRAY, 90, 0), 0);
  const RgbImage back = decode_image(out, size, "gray.jpg");
  tjFree(out);
  tjDestroy(tj);
  ASSERT_EQ(back.width, 32);
  for (size_t i = 0; i < back.pixels.size(); i += 3) {
    EXPECT_EQ(back.pixels[i], back.pixels[i + 1]);
    EXPECT_EQ(back.pixels[i], back.pixels[i + 2]);
  }
}

TEST(Image, BrokenBytesGiveErrorsNamingTheImage) {
  const auto jpeg = encode_jpeg(gradient(64, 64), 90);
  EXPECT_NE(error_of({}, "cam/empty.jpg").find("cam/empty.jpg: image file is empty"), std::string::npos);
  // Cut inside the header, and cut inside the scan data.
  EXPECT_NE(error_of({jpeg.begin(), jpeg.begin() + 40}, "head.jpg").find("head.jpg: not a readable JPEG"),
            std::string::npos);
  EXPECT_NE(error_of({jpeg.begin(), jpeg.end() - 40}, "cut.jpg").find("cut.jpg: corrupt JPEG"), std::string::npos);
  EXPECT_NE(error_of({'G', 'I', 'F', '8'}, "x.gif").find("not a JPEG or PNG"), std::string::npos);
  const auto png = encode_png(gradient(64, 64));
  EXPECT_NE(error_of({png.begin(), png.begin() + png.size() / 2}, "cut.png").find("cut.png"), std::string::npos);
}

TEST(Image, OversizedImageIsRefusedBeforeDecoding) {
  // A real PNG whose header claims 20000x20000 pixels (CRC fixed up so the header itself is valid).
  auto png = encode_png(gradient(4, 4));
  const auto put32 = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) png[at + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
  };
  put32(16, 20000);
  put32(20, 20000);
  put32(29, static_cast<uint32_t>(crc32(0, png.data() + 12, 17)));
  const std::string err = error_of(png, "huge.png");
  EXPECT_NE(err.find("huge.png: image is 20000x20000"), std::string::npos) << err;
}

}  // namespace
}  // namespace drivevqa
