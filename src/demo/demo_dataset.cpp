#include "demo/demo_dataset.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include "demo/canvas.h"
#include "engine/image.h"
#include "prompt/chat_prompt.h"
#include "util/error.h"
#include "util/files.h"
#include "util/text.h"

namespace drivevqa {
namespace {

using Json = nlohmann::ordered_json;

constexpr int kWidth = 1600;
constexpr int kHeight = 900;
constexpr int kHorizon = 430;

enum class Kind { kCar, kTruck, kBus, kPedestrian };

struct DemoObject {
  std::string id;      // c1..c4
  std::string camera;
  double x, y;         // box centre in that camera's image
  Kind kind;
  Color color;
};

struct DemoFrame {
  std::string scene_token;
  std::string frame_token;
  std::vector<DemoObject> objects;
  std::string rare_planning_question;
};

uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdull;
  z = (z ^ (z >> 33)) * 0xc4ceb9fe1a85ec53ull;
  return z ^ (z >> 33);
}

// 32 hex digits like a nuScenes token, deterministic in the name.
std::string token_of(const std::string& name) {
  const uint64_t h = fnv1a64(name);
  return hex64(mix64(h)) + hex64(mix64(h + 0x9e3779b97f4a7c15ull));
}

std::string ref(const DemoObject& o) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "<%s,%s,%.1f,%.1f>", o.id.c_str(), o.camera.c_str(), o.x, o.y);
  return buf;
}

std::vector<DemoFrame> demo_frames() {
  const Color red{200, 30, 30}, blue{30, 60, 190}, white{235, 235, 235}, yellow{230, 190, 20}, dark{40, 40, 50},
      green{40, 140, 60};
  std::vector<DemoFrame> frames;
  const auto frame = [&](const std::string& scene, int index, std::vector<DemoObject> objects, std::string rare) {
    frames.push_back({token_of("scene-" + scene), token_of("frame-" + scene + "-" + std::to_string(index)),
                      std::move(objects), std::move(rare)});
  };
  frame("city", 0,
        {{"c1", "CAM_FRONT", 812.4, 540.0, Kind::kCar, red},
         {"c2", "CAM_BACK", 1088.3, 497.5, Kind::kTruck, white},
         {"c3", "CAM_FRONT_LEFT", 420.0, 560.0, Kind::kPedestrian, blue},
         {"c4", "CAM_FRONT_RIGHT", 1210.6, 520.2, Kind::kBus, yellow}},
        "Are there any issues worth noting in this scene?");
  frame("city", 1,
        {{"c1", "CAM_FRONT", 790.1, 575.3, Kind::kCar, red},
         {"c2", "CAM_BACK", 1040.8, 520.9, Kind::kTruck, white},
         {"c3", "CAM_FRONT_LEFT", 505.5, 565.0, Kind::kPedestrian, blue},
         {"c4", "CAM_BACK_RIGHT", 300.0, 530.0, Kind::kCar, dark}},
        "What is the traffic signal that the ego vehicle should pay attention to?");
  frame("highway", 0,
        {{"c1", "CAM_FRONT", 950.0, 520.5, Kind::kTruck, green},
         {"c2", "CAM_FRONT_RIGHT", 700.2, 560.0, Kind::kCar, blue},
         {"c3", "CAM_BACK_LEFT", 880.0, 540.0, Kind::kCar, yellow},
         {"c4", "CAM_BACK", 760.0, 600.0, Kind::kBus, red}},
        "What situations or conditions could affect the driving of the ego vehicle?");
  frame("highway", 1,
        {{"c1", "CAM_FRONT", 930.7, 545.0, Kind::kTruck, green},
         {"c2", "CAM_FRONT_RIGHT", 640.0, 585.5, Kind::kCar, blue},
         {"c3", "CAM_BACK_LEFT", 905.0, 530.0, Kind::kPedestrian, dark},
         {"c4", "CAM_BACK", 800.0, 620.0, Kind::kBus, red}},
        "In what order should the ego vehicle give priority to the objects in this scene?");
  return frames;
}

void draw_object(Canvas& canvas, const DemoObject& o) {
  // Nearer objects (lower in the image) are drawn larger.
  const double scale = 0.4 + 1.6 * std::max(0.0, o.y - kHorizon) / (kHeight - kHorizon);
  const int cx = static_cast<int>(o.x), cy = static_cast<int>(o.y);
  const auto box = [&](double w, double h) {
    return std::array<int, 4>{cx - static_cast<int>(w * scale / 2), cy - static_cast<int>(h * scale / 2),
                              cx + static_cast<int>(w * scale / 2), cy + static_cast<int>(h * scale / 2)};
  };
  switch (o.kind) {
    case Kind::kPedestrian: {
      const auto b = box(40, 150);
      canvas.fill_rect(b[0], b[1] + (b[3] - b[1]) / 5, b[2], b[3], o.color);
      canvas.fill_circle(cx, b[1] + (b[3] - b[1]) / 10, std::max(3, (b[2] - b[0]) / 2), Color{230, 190, 160});
      break;
    }
    default: {
      const double w = o.kind == Kind::kCar ? 220 : 320, h = o.kind == Kind::kCar ? 120 : 220;
      const auto b = box(w, h);
      canvas.fill_rect(b[0], b[1], b[2], b[3], o.color);
      const int glass = (b[3] - b[1]) / 3;
      canvas.fill_rect(b[0] + (b[2] - b[0]) / 8, b[1] + glass / 4, b[2] - (b[2] - b[0]) / 8, b[1] + glass,
                       Color{90, 120, 150});
      const int wheel = std::max(4, (b[3] - b[1]) / 6);
      canvas.fill_circle(b[0] + (b[2] - b[0]) / 5, b[3], wheel, Color{15, 15, 15});
      canvas.fill_circle(b[2] - (b[2] - b[0]) / 5, b[3], wheel, Color{15, 15, 15});
      break;
    }
  }
}

RgbImage draw_camera(const DemoFrame& frame, std::string_view camera, int camera_index, int frame_index) {
  const bool highway = frame.objects.front().kind == Kind::kTruck;
  Canvas canvas(kWidth, kHeight, Color{0, 0, 0});
  canvas.gradient(0, kHorizon, Color{110, 160, 220}, Color{200, 215, 235});
  canvas.fill_rect(0, kHorizon, kWidth, kHeight, highway ? Color{95, 120, 70} : Color{120, 120, 115});
  const int shift = (camera_index * 97 + frame_index * 41) % 200 - 100;
  const int road_half = highway ? 900 : 700;
  canvas.fill_trapezoid(kHorizon, 760 + shift, 840 + shift, kHeight, 800 - road_half + shift, 800 + road_half + shift,
                        Color{70, 70, 75});
  // Dashed lane marks converging to the vanishing point.
  for (int lane : {-1, 1}) {
    for (int seg = 0; seg < 8; ++seg) {
      const int y0 = kHorizon + 10 + seg * 60, y1 = y0 + 30;
      const auto x_at = [&](int y) { return 800 + shift + lane * (20 + (road_half / 2 - 20) * (y - kHorizon) / (kHeight - kHorizon)); };
      canvas.fill_trapezoid(y0, x_at(y0) - 2, x_at(y0) + 2, y1, x_at(y1) - 5, x_at(y1) + 5, Color{240, 240, 240});
    }
  }
  if (!highway) {  // buildings along a city street
    for (int i = 0; i < 5; ++i) {
      const int x0 = i * 330 + (camera_index * 53) % 90;
      canvas.fill_rect(x0, 150 + (i * 71 + camera_index * 29) % 180, x0 + 220, kHorizon,
                       Color{static_cast<uint8_t>(140 + i * 17), static_cast<uint8_t>(110 + camera_index * 9), 100});
    }
  }
  for (const DemoObject& o : frame.objects) {
    if (o.camera == camera) draw_object(canvas, o);
  }
  return canvas.image();
}

std::vector<std::pair<std::string, std::string>> frame_questions(const DemoFrame& f) {
  const DemoObject& a = f.objects[0];
  const DemoObject& b = f.objects[1];
  const DemoObject& c = f.objects[2];
  const DemoObject& d = f.objects[3];
  return {
      {"perception", "What is the moving status of object " + ref(a) +
                         "? Please select the correct answer from the following options: A. Going ahead. "
                         "B. Turn left. C. Stopped. D. Back up."},
      {"perception", "What is the visual description of " + ref(b) + "?"},
      {"perception", "What are the important objects in the current scene? Those objects will be considered for "
                     "the future reasoning and driving decision."},
      {"prediction", "Would " + ref(a) + " be in the moving direction of the ego vehicle?"},
      {"prediction", "Will " + ref(b) + " be in the moving direction of " + ref(a) + "?"},
      {"prediction", "Will " + ref(c) + " change its motion state based on " + ref(a) + "?"},
      {"prediction", "Would " + ref(d) + " take " + ref(c) + " into account?"},
      {"prediction", "What object should the ego vehicle notice first when the ego vehicle is getting to the next "
                     "possible location? What is the state of the object that is first noticed by the ego vehicle "
                     "and what action should the ego vehicle take? What object should the ego vehicle notice "
                     "second when the ego vehicle is getting to the next possible location? What is the state of "
                     "the object perceived by the ego vehicle as second and what action should the ego vehicle "
                     "take? What object should the ego vehicle notice third? What is the state of the object "
                     "perceived by the ego vehicle as third and what action should the ego vehicle take?"},
      {"planning", "What actions could the ego vehicle take based on " + ref(a) +
                       "? Why take this action and what's the probability?"},
      {"planning", "What actions taken by the ego vehicle can lead to a collision with " + ref(b) + "?"},
      {"planning", "Based on the observation of " + ref(c) + ", what actions may " + ref(c) + " take?"},
      {"planning", "What are the safe actions of the ego vehicle?"},
      {"planning", "What are the dangerous actions of the ego vehicle?"},
      {"planning", "What's your comment on this scene?"},
      {"planning", f.rare_planning_question},
      {"corruption", "What's the current type of corruption? Please select the correct answer from the following "
                     "options: A. Fog. B. Snow. C. Saturate. D. ZoomBlur. E. WaterSplashCorruption"},
      {"behavior", "Predict the behavior of the ego vehicle. Please select the correct answer from the following "
                   "options: A. The ego vehicle is going straight. The ego vehicle is driving slowly. B. The ego "
                   "vehicle is steering to the left. The ego vehicle is driving with normal speed. C. The ego "
                   "vehicle is going straight. The ego vehicle is not moving. D. The ego vehicle is slightly "
                   "steering to the right. The ego vehicle is driving fast."},
  };
}

Json item_json(const DemoFrame& f, const std::string& category, const std::string& question, const Json& paths) {
  Json item;
  item["scene_token"] = f.scene_token;
  item["frame_token"] = f.frame_token;
  item["question"] = question;
  item["answer"] = "";
  item["category"] = category;
  item["img_paths"] = paths;
  return item;
}

}  // namespace

// Three more questions per frame for the benchmark's 20.
std::vector<std::pair<std::string, std::string>> extra_questions(const DemoFrame& f) {
  return {
      {"perception", "What is the visual description of " + ref(f.objects[2]) + "?"},
      {"perception", "What is the moving status of object " + ref(f.objects[3]) +
                         "? Please select the correct answer from the following options: A. Going ahead. "
                         "B. Turn left. C. Stopped. D. Back up."},
      {"prediction", "Would " + ref(f.objects[3]) + " be in the moving direction of the ego vehicle?"},
  };
}

DemoSummary write_demo_dataset(const std::filesystem::path& dir, DemoVariant variant) {
  DemoSummary summary;
  const std::vector<DemoFrame> frames = demo_frames();
  Json items = Json::array();
  std::string last_scene;
  for (size_t fi = 0; fi < frames.size(); ++fi) {
    const DemoFrame& f = frames[fi];
    if (f.scene_token != last_scene) ++summary.scenes;
    last_scene = f.scene_token;
    Json paths = Json::object();
    for (size_t ci = 0; ci < kCameraOrder.size(); ++ci) {
      const std::string camera(kCameraOrder[ci]);
      const std::string rel = "samples/" + camera + "/" + f.scene_token.substr(0, 8) + "_" +
                              f.frame_token.substr(0, 8) + "_" + camera + ".jpg";
      std::filesystem::create_directories(dir / "samples" / camera);
      const std::vector<uint8_t> jpeg = encode_jpeg(draw_camera(f, camera, static_cast<int>(ci), static_cast<int>(fi)), 90);
      write_file_atomic(dir / rel, jpeg.data(), jpeg.size());
      paths[camera] = rel;
      ++summary.images;
    }
    for (const auto& [category, question] : frame_questions(f)) items.push_back(item_json(f, category, question, paths));
    if (variant == DemoVariant::kBenchmark) {
      for (const auto& [category, question] : extra_questions(f)) items.push_back(item_json(f, category, question, paths));
    }
    ++summary.frames;
    if (fi == 0 && variant == DemoVariant::kDemo) {
      // Broken items right after the first frame: one camera missing (answered from the other five),
      // every camera missing and no question (error answers). Everything around them is answered.
      Json missing = item_json(f, "perception", "What is the visual description of " + ref(f.objects[2]) + "?", paths);
      missing["img_paths"]["CAM_BACK_LEFT"] = "samples/CAM_BACK_LEFT/missing_file.jpg";
      items.push_back(missing);
      Json no_images = item_json(f, "prediction", "Would " + ref(f.objects[1]) + " be in the moving direction of the ego vehicle?", paths);
      for (auto& [camera, path] : no_images["img_paths"].items()) path = "samples/" + camera + "/missing_frame.jpg";
      items.push_back(no_images);
      Json no_question = item_json(f, "perception", "", paths);
      no_question.erase("question");
      items.push_back(no_question);
      summary.broken_items = 3;
      summary.unanswerable_items = 2;
    }
  }
  summary.questions = static_cast<int>(items.size());
  summary.questions_file = dir / "questions.json";
  write_file_atomic(summary.questions_file, items.dump(2) + "\n");
  return summary;
}

}  // namespace drivevqa
