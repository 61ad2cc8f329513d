// Visual prompts for referenced objects: a marker (a ring with a dark outline and the object's
// label, one colour per object) drawn at an object's point, on a whole camera image
// (--draw_markers) or on a close-up crop of the original camera image around it (--object_crops).
// Both draw with draw_marker, so a marker looks the same in either.
//
// What must hold: the marker leaves the pixels inside its ring untouched (the object stays
// visible) and is centred on the referenced pixel; a crop holds the original pixels of its window
// except where the marker is drawn. Images are the caller's; nothing here keeps a reference.
#pragma once

#include "dataset/object_refs.h"
#include "engine/image.h"

namespace drivevqa {

// The default side of a crop: 16 x 16 LLM tokens (448 / 28).
inline constexpr int kDefaultCropSize = 448;

// The marker's measures for an image whose shorter side is `short_side` pixels.
struct MarkerStyle {
  int radius = 0;   // of the ring's middle line
  int ring = 0;     // coloured width
  int outline = 0;  // dark edge on each side of the ring
  int glyph_scale = 0;  // the label's 5x7 glyphs, this many pixels per dot
};
MarkerStyle marker_style(int short_side);

// The marker's colour for object number n (c1, c2, ...): bright, distinct for c1..c7.
struct MarkerColor {
  uint8_t r, g, b;
};
MarkerColor marker_color(int object_number);

// Draws `ref`'s marker centred on pixel (x, y) of `image`, its label beside the ring (on the side
// with room). Parts outside the image are clipped.
void draw_marker(RgbImage& image, int x, int y, const ObjectRef& ref);

// `ref`'s point in a width x height image (point_in_image, truncated to the pixel it falls in).
// Throws InputError naming the object when the point lies outside the image.
struct MarkerPixel {
  int x = 0, y = 0;
};
MarkerPixel marker_pixel(const ObjectRef& ref, int width, int height);

// Draws `ref`'s marker on `image` at its point, scaled to the image's size (a resized camera image
// gets it where the object is in it); returns that pixel. Throws as marker_pixel, drawing nothing.
MarkerPixel mark_object(RgbImage& image, const ObjectRef& ref);

struct ObjectCrop {
  RgbImage image;
  int left = 0, top = 0;           // the window's corner in the original image
  int marker_x = 0, marker_y = 0;  // the referenced pixel, in the crop
};

// A size x size window of `original` (narrower where the image is) around `ref`'s point, as
// centred as the image's borders allow, with the marker drawn at the point. Throws InputError
// when the point lies outside the image.
ObjectCrop crop_object(const RgbImage& original, const ObjectRef& ref, int size = kDefaultCropSize);

}  // namespace drivevqa
