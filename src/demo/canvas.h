// A minimal RGB drawing surface for the generated demo camera images.
#pragma once

#include <cstdint>

#include "engine/image.h"

namespace drivevqa {

struct Color {
  uint8_t r, g, b;
};

class Canvas {
 public:
  Canvas(int width, int height, Color fill);

  void fill_rect(int x0, int y0, int x1, int y1, Color c);
  // Vertical gradient between two colours over rows [y0, y1).
  void gradient(int y0, int y1, Color top, Color bottom);
  // Filled trapezoid with horizontal top and bottom edges.
  void fill_trapezoid(int y_top, int x_top0, int x_top1, int y_bottom, int x_bottom0, int x_bottom1, Color c);
  void fill_circle(int cx, int cy, int radius, Color c);

  const RgbImage& image() const { return image_; }

 private:
  void span(int y, int x0, int x1, Color c);
  RgbImage image_;
};

}  // namespace drivevqa
