// The object close-ups of one frame's questions (--object_crops): for each object a question
// names, a crop of the original camera image around its point with its marker (visual/object_crop.h).
//
// What must hold: an object named by several questions of the frame (same label, camera and point)
// is cut once; an object whose camera is not among the frame's usable images, whose image does not
// decode at full size, or whose point lies outside its image is skipped with a warning naming the
// item, and its question is answered without it.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "dataset/object_refs.h"
#include "dataset/question_file.h"
#include "engine/image.h"
#include "pipeline/run_counters.h"

namespace drivevqa {

struct FrameCloseUps {
  std::vector<std::unique_ptr<const RgbImage>> images;  // owned here; the pointers below point into them
  std::vector<std::vector<ObjectRef>> shown;             // per question: the objects with a close-up, in order
  std::vector<std::vector<const RgbImage*>> of;          // per question: their images, in the same order
};

struct CloseUpRequest {
  size_t item_index = 0;               // for warnings
  std::span<const ObjectRef> objects;  // the objects the question names
};

// Cuts the close-ups of `questions` from the original images of `cameras` (the frame's usable
// ones), `crop_size` pixels square. Adds to counters.close_ups, images_decoded and decode time.
FrameCloseUps cut_close_ups(std::span<const CloseUpRequest> questions, const std::vector<CameraImage>& cameras,
                            int crop_size, RunCounters& counters);

}  // namespace drivevqa
