#include "demo/canvas.h"

#include <algorithm>

namespace drivevqa {

Canvas::Canvas(int width, int height, Color fill) {
  image_.width = width;
  image_.height = height;
  image_.pixels.resize(image_.byte_size());
  fill_rect(0, 0, width, height, fill);
}

void Canvas::span(int y, int x0, int x1, Color c) {
  if (y < 0 || y >= image_.height) return;
  x0 = std::max(x0, 0);
  x1 = std::min(x1, image_.width);
  uint8_t* row = image_.pixels.data() + static_cast<size_t>(y) * image_.width * 3;
  for (int x = x0; x < x1; ++x) {
    row[3 * x] = c.r;
    row[3 * x + 1] = c.g;
    row[3 * x + 2] = c.b;
  }
}

void Canvas::fill_rect(int x0, int y0, int x1, int y1, Color c) {
  for (int y = y0; y < y1; ++y) span(y, x0, x1, c);
}

void Canvas::gradient(int y0, int y1, Color top, Color bottom) {
  const int n = std::max(1, y1 - y0);
  for (int y = y0; y < y1; ++y) {
    const int t = y - y0;
    const auto mix = [&](uint8_t a, uint8_t b) { return static_cast<uint8_t>(a + (b - a) * t / n); };
    span(y, 0, image_.width, Color{mix(top.r, bottom.r), mix(top.g, bottom.g), mix(top.b, bottom.b)});
  }
}

void Canvas::fill_trapezoid(int y_top, int x_top0, int x_top1, int y_bottom, int x_bottom0, int x_bottom1, Color c) {
  const int n = std::max(1, y_bottom - y_top);
  for (int y = y_top; y < y_bottom; ++y) {
    const int t = y - y_top;
    span(y, x_top0 + (x_bottom0 - x_top0) * t / n, x_top1 + (x_bottom1 - x_top1) * t / n, c);
  }
}

void Canvas::fill_circle(int cx, int cy, int radius, Color c) {
  for (int dy = -radius; dy <= radius; ++dy) {
    int dx = 0;
    while ((dx + 1) * (dx + 1) + dy * dy <= radius * radius) ++dx;
    span(cy + dy, cx - dx, cx + dx + 1, c);
  }
}

}  // namespace drivevqa
