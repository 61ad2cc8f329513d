#include "engine/image_resize.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace drivevqa {
namespace {

double cubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// The input samples and normalised weights behind each output sample along one axis.
struct Taps {
  int first = 0;
  std::vector<float> weights;
};

std::vector<Taps> taps_for(int in, int out) {
  const double scale = static_cast<double>(in) / out;
  const double stretch = std::max(scale, 1.0);  // shrinking widens the filter: an antialiased result
  const double support = 2.0 * stretch;
  std::vector<Taps> taps(static_cast<size_t>(out));
  for (int i = 0; i < out; ++i) {
    const double center = (i + 0.5) * scale;
    const int lo = std::max(0, static_cast<int>(center - support + 0.5));
    const int hi = std::min(in, static_cast<int>(center + support + 0.5));
    Taps& t = taps[static_cast<size_t>(i)];
    t.first = lo;
    double sum = 0.0;
    for (int j = lo; j < hi; ++j) {
      const double w = cubic((j - center + 0.5) / stretch);
      t.weights.push_back(static_cast<float>(w));
      sum += w;
    }
    if (sum != 0.0) {
      for (float& w : t.weights) w = static_cast<float>(w / sum);
    }
  }
  return taps;
}

uint8_t to_byte(float v) { return static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L)); }

}  // namespace

PixelSize qwen_target_size(int width, int height, const ImageSizing& sizing) {
  const double f = sizing.factor;
  const auto round_to = [&](double x) { return std::max(sizing.factor, static_cast<int>(std::round(x / f)) * sizing.factor); };
  const auto floor_to = [&](double x) { return std::max(sizing.factor, static_cast<int>(std::floor(x / f)) * sizing.factor); };
  const auto ceil_to = [&](double x) { return static_cast<int>(std::ceil(x / f)) * sizing.factor; };
  int w = round_to(width);
  int h = round_to(height);
  const double area = static_cast<double>(width) * height;
  if (static_cast<int64_t>(w) * h > sizing.max_pixels) {
    const double beta = std::sqrt(area / static_cast<double>(sizing.max_pixels));
    w = floor_to(width / beta);
    h = floor_to(height / beta);
  } else if (static_cast<int64_t>(w) * h < sizing.min_pixels) {
    const double beta = std::sqrt(static_cast<double>(sizing.min_pixels) / area);
    w = ceil_to(width * beta);
    h = ceil_to(height * beta);
  }
  return {w, h};
}

RgbImage resize_bicubic(const RgbImage& image, PixelSize size) {
  if (size.width == image.width && size.height == image.height) return image;
  // Horizontal pass into 8-bit rows (as Pillow does), then the vertical pass.
  const std::vector<Taps> across = taps_for(image.width, size.width);
  RgbImage wide{size.width, image.height, {}};
  wide.pixels.resize(wide.byte_size());
  for (int y = 0; y < image.height; ++y) {
    const uint8_t* row = image.pixels.data() + static_cast<size_t>(y) * image.width * 3;
    uint8_t* out = wide.pixels.data() + static_cast<size_t>(y) * size.width * 3;
    for (int x = 0; x < size.width; ++x) {
      const Taps& t = across[static_cast<size_t>(x)];
      float acc[3] = {0, 0, 0};
      for (size_t k = 0; k < t.weights.size(); ++k) {
        const uint8_t* p = row + static_cast<size_t>(t.first + static_cast<int>(k)) * 3;
        for (int c = 0; c < 3; ++c) acc[c] += t.weights[k] * p[c];
      }
      for (int c = 0; c < 3; ++c) out[x * 3 + c] = to_byte(acc[c]);
    }
  }
  const std::vector<Taps> down = taps_for(image.height, size.height);
  RgbImage result{size.width, size.height, {}};
  result.pixels.resize(result.byte_size());
  const size_t stride = static_cast<size_t>(size.width) * 3;
  std::vector<float> acc(stride);
  for (int y = 0; y < size.height; ++y) {
    const Taps& t = down[static_cast<size_t>(y)];
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (size_t k = 0; k < t.weights.size(); ++k) {
      const uint8_t* row = wide.pixels.data() + static_cast<size_t>(t.first + static_cast<int>(k)) * stride;
      const float w = t.weights[k];
      for (size_t i = 0; i < stride; ++i) acc[i] += w * row[i];
    }
    uint8_t* out = result.pixels.data() + static_cast<size_t>(y) * stride;
    for (size_t i = 0; i < stride; ++i) out[i] = to_byte(acc[i]);
  }
  return result;
}

}  // namespace drivevqa
