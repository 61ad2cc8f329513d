#include "visual/object_crop.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <string>

#include "util/error.h"

namespace drivevqa {
namespace {

constexpr MarkerColor kOutline{16, 16, 16};

// 5x7 dot glyphs, one row per entry, the leftmost dot in bit 4.
using Glyph = std::array<uint8_t, 7>;
const Glyph* glyph(char c) {
  static const Glyph kDigits[10] = {
      {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}, {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},
      {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}, {0x1E, 0x01, 0x01, 0x0E, 0x01, 0x01, 0x1E},
      {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}, {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},
      {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}, {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
      {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}, {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}};
  static const Glyph kLowerC = {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E};
  if (c >= '0' && c <= '9') return &kDigits[c - '0'];
  return c == 'c' ? &kLowerC : nullptr;
}

void put(RgbImage& image, int x, int y, MarkerColor c) {
  if (x < 0 || y < 0 || x >= image.width || y >= image.height) return;
  uint8_t* p = &image.pixels[(static_cast<size_t>(y) * image.width + x) * 3];
  p[0] = c.r, p[1] = c.g, p[2] = c.b;
}

void fill(RgbImage& image, int x0, int y0, int x1, int y1, MarkerColor c) {
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) put(image, x, y, c);
}

void draw_ring(RgbImage& image, int cx, int cy, const MarkerStyle& s, MarkerColor color) {
  const double half = s.ring / 2.0;
  const int reach = s.radius + s.ring + s.outline;
  for (int y = cy - reach; y <= cy + reach; ++y) {
    for (int x = cx - reach; x <= cx + reach; ++x) {
      const double off = std::abs(std::hypot(x - cx, y - cy) - s.radius);
      if (off <= half) {
        put(image, x, y, color);
      } else if (off <= half + s.outline) {
        put(image, x, y, kOutline);
      }
    }
  }
}

// The label on a dark box beside the ring: right of it when it fits, else left; above the centre line.
void draw_label(RgbImage& image, int cx, int cy, const std::string& text, const MarkerStyle& s, MarkerColor color) {
  const int pad = s.glyph_scale, advance = 6 * s.glyph_scale;
  const int box_w = static_cast<int>(text.size()) * advance + pad, box_h = 7 * s.glyph_scale + 2 * pad;
  const int gap = s.radius + s.ring + s.outline + 2;
  int left = cx + gap;
  if (left + box_w > image.width) left = cx - gap - box_w;
  const int top = std::clamp(cy - gap - box_h / 2, 0, std::max(0, image.height - box_h));
  fill(image, left, top, left + box_w, top + box_h, kOutline);
  for (size_t i = 0; i < text.size(); ++i) {
    const Glyph* g = glyph(text[i]);
    if (!g) continue;
    const int gx = left + pad + static_cast<int>(i) * advance;
    for (int row = 0; row < 7; ++row)
      for (int col = 0; col < 5; ++col)
        if ((*g)[row] & (0x10 >> col)) {
          fill(image, gx + col * s.glyph_scale, top + pad + row * s.glyph_scale, gx + (col + 1) * s.glyph_scale,
               top + pad + (row + 1) * s.glyph_scale, color);
        }
  }
}

}  // namespace

MarkerStyle marker_style(int short_side) {
  MarkerStyle s;
  s.radius = std::clamp(short_side / 28, 8, 40);
  s.ring = std::max(2, s.radius / 4);
  s.outline = std::max(1, s.ring / 2);
  s.glyph_scale = std::max(1, s.radius / 6);
  return s;
}

MarkerColor marker_color(int object_number) {
  static constexpr MarkerColor kPalette[] = {{255, 0, 255}, {0, 255, 255}, {255, 255, 0}, {0, 255, 0},
                                            {255, 128, 0}, {255, 64, 64}, {64, 128, 255}};
  constexpr int n = static_cast<int>(std::size(kPalette));
  return kPalette[((std::max(object_number, 1) - 1) % n + n) % n];
}

void draw_marker(RgbImage& image, int x, int y, const ObjectRef& ref) {
  const MarkerStyle style = marker_style(std::min(image.width, image.height));
  const MarkerColor color = marker_color(ref.number);
  draw_ring(image, x, y, style, color);
  draw_label(image, x, y, ref.label, style, color);
}

MarkerPixel marker_pixel(const ObjectRef& ref, int width, int height) {
  const PixelPoint p = point_in_image(ref, width, height);
  if (!(p.x >= 0 && p.y >= 0 && p.x < width && p.y < height)) {
    throw InputError("object " + ref.label + ": its point (" + std::to_string(ref.x) + ", " + std::to_string(ref.y) +
                     ") lies outside the " + std::to_string(width) + "x" + std::to_string(height) + " " + ref.camera + " image");
  }
  return {static_cast<int>(p.x), static_cast<int>(p.y)};
}

MarkerPixel mark_object(RgbImage& image, const ObjectRef& ref) {
  const MarkerPixel at = marker_pixel(ref, image.width, image.height);
  draw_marker(image, at.x, at.y, ref);
  return at;
}

ObjectCrop crop_object(const RgbImage& original, const ObjectRef& ref, int size) {
  const auto [px, py] = marker_pixel(ref, original.width, original.height);
  ObjectCrop crop;
  crop.image.width = std::min(size, original.width);
  crop.image.height = std::min(size, original.height);
  crop.left = std::clamp(px - crop.image.width / 2, 0, original.width - crop.image.width);
  crop.top = std::clamp(py - crop.image.height / 2, 0, original.height - crop.image.height);
  crop.image.pixels.resize(crop.image.byte_size());
  const size_t row_bytes = static_cast<size_t>(crop.image.width) * 3;
  for (int y = 0; y < crop.image.height; ++y) {
    const uint8_t* from = &original.pixels[(static_cast<size_t>(crop.top + y) * original.width + crop.left) * 3];
    std::copy_n(from, row_bytes, &crop.image.pixels[static_cast<size_t>(y) * row_bytes]);
  }
  crop.marker_x = px - crop.left;
  crop.marker_y = py - crop.top;
  draw_marker(crop.image, crop.marker_x, crop.marker_y, ref);
  return crop;
}

}  // namespace drivevqa
