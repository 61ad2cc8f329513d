#include "pipeline/frame_close_ups.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>

#include "util/error.h"
#include "util/stopwatch.h"
#include "visual/object_crop.h"

namespace drivevqa {
namespace {

// The frame's original images, decoded at full size on first use (the model-sized ones are
// resized; a close-up is cut from the camera's own pixels). A camera that fails stays failed.
class Originals {
 public:
  Originals(const std::vector<CameraImage>& cameras, RunCounters& counters) : cameras_(cameras), counters_(counters) {}

  // Null, with `why` set, when the camera is not in the frame or its file does not decode.
  const RgbImage* get(const std::string& camera, std::string& why) {
    const auto known = decoded_.find(camera);
    if (known != decoded_.end()) {
      why = known->second.second;
      return known->second.first.get();
    }
    auto& [image, error] = decoded_[camera];
    const auto it = std::find_if(cameras_.begin(), cameras_.end(), [&](const CameraImage& c) { return c.camera == camera; });
    if (it == cameras_.end()) {
      error = "camera " + camera + " is not among the item's usable images";
    } else {
      const auto t0 = std::chrono::steady_clock::now();
      try {
        image = std::make_unique<RgbImage>(load_image_file(it->path));
        ++counters_.images_decoded;
      } catch (const InputError& e) {
        error = e.what();
      }
      counters_.seconds.decode_images += seconds_since(t0);
    }
    why = error;
    return image.get();
  }

 private:
  const std::vector<CameraImage>& cameras_;
  RunCounters& counters_;
  std::map<std::string, std::pair<std::unique_ptr<RgbImage>, std::string>> decoded_;
};

// Same object, camera and point: the same close-up.
std::string close_up_key(const ObjectRef& ref) {
  return ref.label + '\n' + ref.camera + '\n' + std::to_string(ref.x) + '\n' + std::to_string(ref.y);
}

}  // namespace

FrameCloseUps cut_close_ups(std::span<const CloseUpRequest> questions, const std::vector<CameraImage>& cameras,
                            int crop_size, RunCounters& counters) {
  FrameCloseUps out;
  out.shown.resize(questions.size());
  out.of.resize(questions.size());
  Originals originals(cameras, counters);
  std::map<std::string, const RgbImage*> cut;
  for (size_t q = 0; q < questions.size(); ++q) {
    for (const ObjectRef& ref : questions[q].objects) {
      const RgbImage* image = nullptr;
      if (const auto it = cut.find(close_up_key(ref)); it != cut.end()) {
        image = it->second;
      } else {
        std::string why;
        if (const RgbImage* original = originals.get(ref.camera, why)) {
          try {
            out.images.push_back(std::make_unique<const RgbImage>(crop_object(*original, ref, crop_size).image));
            image = out.images.back().get();
            ++counters.close_ups;
          } catch (const InputError& e) {
            why = e.what();
          }
        }
        if (!image) {
          spdlog::warn("item {}: no close-up of {}: {}", questions[q].item_index, ref.label, why);
          continue;
        }
        cut.emplace(close_up_key(ref), image);
      }
      out.shown[q].push_back(ref);
      out.of[q].push_back(image);
    }
  }
  return out;
}

}  // namespace drivevqa
