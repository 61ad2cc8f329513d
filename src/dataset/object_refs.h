// Object references in Track 1 questions: `<cN,CAM,x,y>`, e.g. `<c1,CAM_BACK,1088.3,497.5>`, an
// object id of its frame, the camera it is seen in and the centre of its 2-D box in that camera's
// image (1600x900 pixels; DriveBench files use [0, 1] instead).
//
// What must hold: any text parses without throwing; a reference that does not have exactly this
// form is not a reference (it stays plain text of the question).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace drivevqa {

struct ObjectRef {
  std::string label;   // "c1"
  int number = 0;      // 1 for c1
  std::string camera;  // as written, e.g. "CAM_BACK"
  double x = 0, y = 0;
};

// The nuScenes camera image size the pixel coordinates refer to.
inline constexpr double kReferenceImageWidth = 1600, kReferenceImageHeight = 900;

// The question's references in order of first appearance, each label once (its first form).
std::vector<ObjectRef> object_refs(std::string_view question);

// The reference's point in an image of width x height pixels: pixel coordinates scaled from
// 1600x900, normalised ones (both at most 1) from [0, 1].
struct PixelPoint {
  double x = 0, y = 0;
};
PixelPoint point_in_image(const ObjectRef& ref, int width, int height);

}  // namespace drivevqa
