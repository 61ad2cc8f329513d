#include "pipeline/frame_markers.h"

#include <algorithm>
#include <stdexcept>

#include "util/error.h"
#include "visual/object_crop.h"

namespace drivevqa {
namespace {

bool has_camera(const std::vector<CameraImage>& cameras, const std::string& camera) {
  return std::any_of(cameras.begin(), cameras.end(), [&](const CameraImage& c) { return c.camera == camera; });
}

std::string not_among(const ObjectRef& ref, const char* which) {
  return ref.label + ": camera " + ref.camera + " is not among the item's " + which + "images";
}

}  // namespace

MarkerChoice choose_markers(std::string_view question, const std::vector<CameraImage>& cameras) {
  MarkerChoice choice;
  for (ObjectRef& ref : object_refs(question)) {
    if (!has_camera(cameras, ref.camera)) {
      choice.skipped.push_back(not_among(ref, ""));
      continue;
    }
    // The point in relative terms: inside the reference frame is inside an image of any size.
    const PixelPoint p = point_in_image(ref, static_cast<int>(kReferenceImageWidth), static_cast<int>(kReferenceImageHeight));
    if (!(p.x >= 0 && p.y >= 0 && p.x < kReferenceImageWidth && p.y < kReferenceImageHeight)) {
      choice.skipped.push_back(ref.label + ": its point (" + std::to_string(ref.x) + ", " + std::to_string(ref.y) +
                               ") lies outside the " + ref.camera + " image");
      continue;
    }
    choice.marked.push_back(std::move(ref));
  }
  // Labels are unique within a question (object_refs): this order is total.
  std::sort(choice.marked.begin(), choice.marked.end(), [](const ObjectRef& a, const ObjectRef& b) {
    return a.number != b.number ? a.number < b.number : a.label < b.label;
  });
  return choice;
}

std::string marker_set_key(std::span<const ObjectRef> marked) {
  std::string key;
  for (const ObjectRef& ref : marked) {
    key += "marker " + ref.label + ' ' + ref.camera + ' ' + std::to_string(ref.x) + ' ' + std::to_string(ref.y) + '\n';
  }
  return key;
}

FrameMarkers draw_frame_markers(std::span<const ObjectRef> marked, const std::vector<CameraImage>& cameras,
                                std::span<const RgbImage*> images, RunCounters& counters) {
  if (cameras.size() != images.size()) throw std::logic_error("draw_frame_markers: one image per camera");
  FrameMarkers out;
  std::vector<bool> drawn(marked.size(), false);
  for (size_t c = 0; c < cameras.size(); ++c) {
    std::unique_ptr<RgbImage> copy;  // made for the camera's first marker
    bool drew_here = false;
    for (size_t i = 0; i < marked.size(); ++i) {
      if (marked[i].camera != cameras[c].camera) continue;
      if (!copy) copy = std::make_unique<RgbImage>(*images[c]);
      try {
        mark_object(*copy, marked[i]);
        drawn[i] = drew_here = true;
      } catch (const InputError& e) {
        out.skipped.push_back(e.what());  // names the object
      }
    }
    if (!drew_here) continue;
    images[c] = copy.get();
    out.images.push_back(std::move(copy));
    out.cameras.push_back(cameras[c].camera);
  }
  std::vector<ObjectRef> shown;
  for (size_t i = 0; i < marked.size(); ++i) {
    if (drawn[i]) {
      shown.push_back(marked[i]);
    } else if (!has_camera(cameras, marked[i].camera)) {
      out.skipped.push_back(not_among(marked[i], "usable "));
    }
  }
  out.key = marker_set_key(shown);
  counters.marked_images += out.images.size();
  if (!out.images.empty()) ++counters.marker_sets;
  return out;
}

}  // namespace drivevqa
