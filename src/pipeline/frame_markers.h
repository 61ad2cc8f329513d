// Markers on the camera images themselves (--draw_markers): each object a question names
// (<cN,CAM,x,y>) gets its marker (visual/object_crop.h) drawn on its camera's image, where the
// object is in that image at the size the engine gets it.
//
// A question's marked images are its own, so it cannot share its frame's prefix; questions with
// the same marker set (labels, cameras and points) can: the Runner makes them one frame of their
// own by adding marker_set_key() to the frame key, and draws their images once for that frame.
//
// What must hold: the same set of objects gives the same key and the same pixels whatever order
// the question names them in; cameras no object is on keep the frame's own (unmodified) image, so
// the engine's embedding cache, keyed by content, encodes them once for all the frame's questions;
// a reference that cannot be drawn is skipped with a reason, never an exception.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dataset/object_refs.h"
#include "dataset/question_file.h"
#include "engine/image.h"
#include "pipeline/run_counters.h"

namespace drivevqa {

struct MarkerChoice {
  std::vector<ObjectRef> marked;     // in a canonical order (object number, then label)
  std::vector<std::string> skipped;  // one reason per reference left out ("c1: camera ... is not ...")
};

// The objects `question` names that can be marked on `cameras` (an item's images): those whose
// camera is among them and whose point lies inside the image (checked in relative terms, so it
// holds at any image size). No image is read.
MarkerChoice choose_markers(std::string_view question, const std::vector<CameraImage>& cameras);

// A marker set's identity for frame and prefix keys: labels, cameras and points; "" for none.
std::string marker_set_key(std::span<const ObjectRef> marked);

struct FrameMarkers {
  std::vector<std::unique_ptr<const RgbImage>> images;  // the marked copies, owned here
  std::vector<std::string> cameras;                     // the camera of each image
  std::string key;                   // marker_set_key of what was drawn; "" when nothing was
  std::vector<std::string> skipped;  // references that could not be drawn, with the reason
};

// Draws `marked` on copies of the images in `images` (those of `cameras`, in the same order, as
// the engine gets them) and points each marked camera's entry of `images` at its copy, which the
// returned FrameMarkers owns: keep it alive while `images` is used. A reference whose camera is not
// among `cameras` or whose point falls outside its image goes to `skipped`. Adds the images drawn
// to counters.marked_images and, when any is, one to counters.marker_sets.
FrameMarkers draw_frame_markers(std::span<const ObjectRef> marked, const std::vector<CameraImage>& cameras,
                                std::span<const RgbImage*> images, RunCounters& counters);

}  // namespace drivevqa
