// Counts the pixels of one colour in an image (a browser screenshot of the eval report), so that a
// script can tell whether the report's bar chart was drawn.
// Usage: drivevqa_png_colour_count IMAGE.png RRGGBB [--tolerance N] [--min N]
// Prints "<count> pixels of #RRGGBB (+-N per channel) in WxH"; exits 1 when fewer than --min.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/image.h"
#include "util/error.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s IMAGE.png RRGGBB [--tolerance N] [--min N]\n", argv[0]);
    return 2;
  }
  const std::string hex = argv[2][0] == '#' ? argv[2] + 1 : argv[2];
  int tolerance = 6;
  long minimum = 0;
  for (int i = 3; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--tolerance") tolerance = std::atoi(argv[i + 1]);
    else if (flag == "--min") minimum = std::atol(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (hex.size() != 6) {
    std::fprintf(stderr, "colour must be RRGGBB, got %s\n", argv[2]);
    return 2;
  }
  const long rgb = std::strtol(hex.c_str(), nullptr, 16);
  const int want[3] = {static_cast<int>((rgb >> 16) & 0xff), static_cast<int>((rgb >> 8) & 0xff), static_cast<int>(rgb & 0xff)};
  try {
    const drivevqa::RgbImage image = drivevqa::load_image_file(argv[1]);
    long count = 0;
    for (size_t p = 0; p + 2 < image.pixels.size(); p += 3) {
      bool near = true;
      for (int c = 0; c < 3; ++c) near = near && std::abs(image.pixels[p + c] - want[c]) <= tolerance;
      count += near ? 1 : 0;
    }
    std::printf("%ld pixels of #%s (+-%d per channel) in %dx%d\n", count, hex.c_str(), tolerance, image.width, image.height);
    return count >= minimum ? 0 : 1;
  } catch (const drivevqa::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return e.exit_code();
  }
}
