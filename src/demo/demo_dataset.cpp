#include "demo/demo_dataset.h"

#include <nlohmann/json.hpp>

#include <cctype>
#include <cstdio>
#include <string>
#include <vector>

#include "demo/canvas.h"
#include "engine/image.h"
#include "prompt/chat_prompt.h"
#include "util/error.h"
#include "util/atomic_file.h"
#include "util/files.h"
#include "util/text.h"

namespace drivevqa {
namespace {

using OrderedJson = nlohmann::ordered_json;

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
  bool parked = false;  // a vehicle standing at the roadside (ground truth: "Stopped.")
};

struct DemoFrame {
  std::string scene_token;
  std::string frame_token;
  std::vector<DemoObject> objects;
  std::string rare_planning_question;
  std::string rare_planning_answer;  // ground truth
  char behavior_letter = 'A';        // ground truth of the behavior question
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
  const auto frame = [&](const std::string& scene, int index, std::vector<DemoObject> objects, std::string rare,
                         std::string rare_answer) {
    // The ego vehicle goes straight: slowly in the city (A), fast on the highway (D).
    frames.push_back({token_of("scene-" + scene), token_of("frame-" + scene + "-" + std::to_string(index)),
                      std::move(objects), std::move(rare), std::move(rare_answer), scene == "city" ? 'A' : 'D'});
  };
  frame("city", 0,
        {{"c1", "CAM_FRONT", 812.4, 540.0, Kind::kCar, red},
         {"c2", "CAM_BACK", 1088.3, 497.5, Kind::kTruck, white},
         {"c3", "CAM_FRONT_LEFT", 420.0, 560.0, Kind::kPedestrian, blue},
         {"c4", "CAM_FRONT_RIGHT", 1210.6, 520.2, Kind::kBus, yellow}},
        "Are there any issues worth noting in this scene?",
        "Yes, the pedestrian to the front left of the ego vehicle may cross the road.");
  frame("city", 1,
        {{"c1", "CAM_FRONT", 790.1, 575.3, Kind::kCar, red},
         {"c2", "CAM_BACK", 1040.8, 520.9, Kind::kTruck, white},
         {"c3", "CAM_FRONT_LEFT", 505.5, 565.0, Kind::kPedestrian, blue},
         {"c4", "CAM_BACK_RIGHT", 300.0, 530.0, Kind::kCar, dark, true}},
        "What is the traffic signal that the ego vehicle should pay attention to?",
        "There is no traffic signal that the ego vehicle should pay attention to.");
  frame("highway", 0,
        {{"c1", "CAM_FRONT", 950.0, 520.5, Kind::kTruck, green},
         {"c2", "CAM_FRONT_RIGHT", 700.2, 560.0, Kind::kCar, blue},
         {"c3", "CAM_BACK_LEFT", 880.0, 540.0, Kind::kCar, yellow},
         {"c4", "CAM_BACK", 760.0, 600.0, Kind::kBus, red}},
        "What situations or conditions could affect the driving of the ego vehicle?",
        "The green truck in front of the ego vehicle may slow down, and the blue car to the front right may change lanes.");
  frame("highway", 1,
        {{"c1", "CAM_FRONT", 930.7, 545.0, Kind::kTruck, green},
         {"c2", "CAM_FRONT_RIGHT", 640.0, 585.5, Kind::kCar, blue},
         {"c3", "CAM_BACK_LEFT", 905.0, 530.0, Kind::kPedestrian, dark},
         {"c4", "CAM_BACK", 800.0, 620.0, Kind::kBus, red}},
        "In what order should the ego vehicle give priority to the objects in this scene?",
        "First the green truck in front of the ego vehicle, then the blue car to the front right, then the red bus "
        "behind the ego vehicle.");
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

// Ground-truth wording (DriveLM's style) for the drawn objects.
std::string colour_name(Color c) {
  struct Named {
    Color colour;
    const char* name;
  };
  static const Named kNames[] = {{{200, 30, 30}, "red"},     {{30, 60, 190}, "blue"},  {{235, 235, 235}, "white"},
                                 {{230, 190, 20}, "yellow"}, {{40, 40, 50}, "black"},  {{40, 140, 60}, "green"}};
  for (const Named& n : kNames) {
    if (n.colour.r == c.r && n.colour.g == c.g && n.colour.b == c.b) return n.name;
  }
  return "grey";
}

// "a red car", "a pedestrian in blue".
std::string describe(const DemoObject& o) {
  switch (o.kind) {
    case Kind::kPedestrian: return "a pedestrian in " + colour_name(o.color);
    case Kind::kCar: return "a " + colour_name(o.color) + " car";
    case Kind::kTruck: return "a " + colour_name(o.color) + " truck";
    case Kind::kBus: return "a " + colour_name(o.color) + " bus";
  }
  return "an object";
}

// "the front left of the ego vehicle" for CAM_FRONT_LEFT.
std::string side_of(const DemoObject& o) {
  std::string side = to_lower(std::string_view(o.camera).substr(4));  // "front_left"
  for (char& c : side) c = c == '_' ? ' ' : c;
  return "the " + side + " of the ego vehicle";
}

// "A white truck, to the back of the ego vehicle."
std::string visual_description(const DemoObject& o) {
  std::string text = describe(o) + ", to " + side_of(o) + ".";
  text[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(text[0])));
  return text;
}

bool standing(const DemoObject& o) { return o.kind == Kind::kPedestrian || o.parked; }
// Options of the moving-status question: A. Going ahead. B. Turn left. C. Stopped. D. Back up.
std::string moving_status_letter(const DemoObject& o) { return standing(o) ? "C" : "A"; }
std::string yes_no(bool yes) { return yes ? "Yes." : "No."; }

std::string important_objects(const DemoFrame& f) {
  std::string text = "There is ", ids;
  for (size_t i = 0; i < f.objects.size(); ++i) {
    const bool last = i + 1 == f.objects.size();
    const std::string sep = i == 0 ? "" : last ? ", and " : ", ";
    text += sep + describe(f.objects[i]) + " to " + side_of(f.objects[i]);
    ids += sep + ref(f.objects[i]);
  }
  return text + ". The IDs of these objects are " + ids + ".";
}

std::string notice_chain(const DemoFrame& f) {
  const char* order[] = {"Firstly", "Secondly", "Thirdly"};
  const DemoObject* objects[] = {&f.objects[0], &f.objects[2], &f.objects[1]};
  std::string text;
  for (int i = 0; i < 3; ++i) {
    const DemoObject& o = *objects[i];
    text += std::string(i ? " " : "") + order[i] + " notice that " + ref(o) + ". The object is " +
            (standing(o) ? "standing still, so the ego vehicle should slow down." : "going ahead, so the ego vehicle "
                                                                                    "should keep going at the same speed.");
  }
  return text;
}

struct DemoQuestion {
  std::string category, question, answer;  // answer: the ground truth
};

std::vector<DemoQuestion> frame_questions(const DemoFrame& f) {
  const DemoObject& a = f.objects[0];
  const DemoObject& b = f.objects[1];
  const DemoObject& c = f.objects[2];
  const DemoObject& d = f.objects[3];
  const bool highway = a.kind == Kind::kTruck;
  return {
      {"perception", "What is the moving status of object " + ref(a) +
                         "? Please select the correct answer from the following options: A. Going ahead. "
                         "B. Turn left. C. Stopped. D. Back up.", moving_status_letter(a)},
      {"perception", "What is the visual description of " + ref(b) + "?", visual_description(b)},
      {"perception", "What are the important objects in the current scene? Those objects will be considered for "
                     "the future reasoning and driving decision.", important_objects(f)},
      {"prediction", "Would " + ref(a) + " be in the moving direction of the ego vehicle?", yes_no(a.camera == "CAM_FRONT")},
      {"prediction", "Will " + ref(b) + " be in the moving direction of " + ref(a) + "?", yes_no(false)},
      {"prediction", "Will " + ref(c) + " change its motion state based on " + ref(a) + "?", yes_no(false)},
      {"prediction", "Would " + ref(d) + " take " + ref(c) + " into account?", yes_no(c.kind == Kind::kPedestrian)},
      {"prediction", "What object should the ego vehicle notice first when the ego vehicle is getting to the next "
                     "possible location? What is the state of the object that is first noticed by the ego vehicle "
                     "and what action should the ego vehicle take? What object should the ego vehicle notice "
                     "second when the ego vehicle is getting to the next possible location? What is the state of "
                     "the object perceived by the ego vehicle as second and what action should the ego vehicle "
                     "take? What object should the ego vehicle notice third? What is the state of the object "
                     "perceived by the ego vehicle as third and what action should the ego vehicle take?",
       notice_chain(f)},
      {"planning", "What actions could the ego vehicle take based on " + ref(a) +
                       "? Why take this action and what's the probability?",
       "The action is to keep a safe distance and go ahead at the same speed. The reason is that there is " +
           describe(a) + " ahead of the ego vehicle, which has a high probability."},
      {"planning", "What actions taken by the ego vehicle can lead to a collision with " + ref(b) + "?",
       b.camera.find("BACK") != std::string::npos ? "Back up." : "Accelerate and go ahead."},
      {"planning", "Based on the observation of " + ref(c) + ", what actions may " + ref(c) + " take?",
       standing(c) ? "It may stand still." : "It may keep going ahead."},
      {"planning", "What are the safe actions of the ego vehicle?",
       "Keep going at the same speed, decelerate gradually without braking."},
      {"planning", "What are the dangerous actions of the ego vehicle?", "Back up, brake suddenly."},
      {"planning", "What's your comment on this scene?",
       std::string("The ego vehicle is driving on a ") + (highway ? "highway" : "city street") +
           "; it should keep a safe distance from " + describe(a) + " ahead."},
      {"planning", f.rare_planning_question, f.rare_planning_answer},
      // The demo's images are clean: the corruption answer is nominal.
      {"corruption", "What's the current type of corruption? Please select the correct answer from the following "
                     "options: A. Fog. B. Snow. C. Saturate. D. ZoomBlur. E. WaterSplashCorruption", "A"},
      {"behavior", "Predict the behavior of the ego vehicle. Please select the correct answer from the following "
                   "options: A. The ego vehicle is going straight. The ego vehicle is driving slowly. B. The ego "
                   "vehicle is steering to the left. The ego vehicle is driving with normal speed. C. The ego "
                   "vehicle is going straight. The ego vehicle is not moving. D. The ego vehicle is slightly "
                   "steering to the right. The ego vehicle is driving fast.", std::string(1, f.behavior_letter)},
  };
}

// Three more questions per frame for the benchmark's 20.
std::vector<DemoQuestion> extra_questions(const DemoFrame& f) {
  const DemoObject& c = f.objects[2];
  const DemoObject& d = f.objects[3];
  return {
      {"perception", "What is the visual description of " + ref(c) + "?", visual_description(c)},
      {"perception", "What is the moving status of object " + ref(d) +
                         "? Please select the correct answer from the following options: A. Going ahead. "
                         "B. Turn left. C. Stopped. D. Back up.", moving_status_letter(d)},
      {"prediction", "Would " + ref(d) + " be in the moving direction of the ego vehicle?", yes_no(d.camera == "CAM_FRONT")},
  };
}

OrderedJson item_json(const DemoFrame& f, const std::string& category, const std::string& question, const OrderedJson& paths) {
  OrderedJson item;
  item["scene_token"] = f.scene_token;
  item["frame_token"] = f.frame_token;
  item["question"] = question;
  item["answer"] = "";
  item["category"] = category;
  item["img_paths"] = paths;
  return item;
}

// The question list and the ground truth beside it.
struct DemoLists {
  OrderedJson questions = OrderedJson::array();
  OrderedJson ground_truth = OrderedJson::array();

  void add(const DemoFrame& f, const DemoQuestion& q, const OrderedJson& paths, const OrderedJson& history) {
    OrderedJson item = item_json(f, q.category, q.question, paths);
    item["history_frames"] = history;
    questions.push_back(item);
    item["answer"] = q.answer;
    ground_truth.push_back(std::move(item));
  }
};

// Broken items right after the first frame: one camera missing (answered from the other five, so it
// has ground truth), every camera missing and no question (error answers: no ground truth).
void add_broken_items(DemoLists& lists, const DemoFrame& f, const OrderedJson& paths) {
  const DemoObject& c = f.objects[2];
  OrderedJson missing = item_json(f, "perception", "What is the visual description of " + ref(c) + "?", paths);
  missing["img_paths"]["CAM_BACK_LEFT"] = "samples/CAM_BACK_LEFT/missing_file.jpg";
  lists.questions.push_back(missing);
  missing["answer"] = visual_description(c);
  lists.ground_truth.push_back(std::move(missing));
  OrderedJson no_images = item_json(f, "prediction", "Would " + ref(f.objects[1]) + " be in the moving direction of the ego vehicle?", paths);
  for (auto& [camera, path] : no_images["img_paths"].items()) path = "samples/" + camera + "/missing_frame.jpg";
  lists.questions.push_back(no_images);
  OrderedJson no_question = item_json(f, "perception", "", paths);
  no_question.erase("question");
  lists.questions.push_back(no_question);
}

// Draws and writes the frame's six camera images; their paths by camera.
OrderedJson write_frame_images(const std::filesystem::path& dir, const DemoFrame& f, int frame_index, DemoSummary& summary) {
  OrderedJson paths = OrderedJson::object();
  for (size_t ci = 0; ci < kCameraOrder.size(); ++ci) {
    const std::string camera(kCameraOrder[ci]);
    const std::string rel = "samples/" + camera + "/" + f.scene_token.substr(0, 8) + "_" + f.frame_token.substr(0, 8) + "_" +
                            camera + ".jpg";
    std::filesystem::create_directories(dir / "samples" / camera);
    const std::vector<uint8_t> jpeg = encode_jpeg(draw_camera(f, camera, static_cast<int>(ci), frame_index), 90);
    write_file_atomic(dir / rel, jpeg.data(), jpeg.size());
    paths[camera] = rel;
    ++summary.images;
  }
  return paths;
}

// The key frame before a scene's first questioned one: images only, so that the scene's frames have
// one and two earlier frames of history (as nuScenes has, fewer at a scene's start).
DemoFrame frame_before(const DemoFrame& first) {
  DemoFrame before = first;
  before.frame_token = token_of("before-" + first.frame_token);
  return before;
}

}  // namespace

DemoSummary write_demo_dataset(const std::filesystem::path& dir, DemoVariant variant) {
  DemoSummary summary;
  const std::vector<DemoFrame> frames = demo_frames();
  DemoLists lists;
  std::string last_scene;
  std::vector<std::pair<std::string, OrderedJson>> scene_history;  // earlier frames of the scene: token, paths (oldest first)
  for (size_t fi = 0; fi < frames.size(); ++fi) {
    const DemoFrame& f = frames[fi];
    if (f.scene_token != last_scene) {
      ++summary.scenes;
      const DemoFrame before = frame_before(f);
      scene_history = {{before.frame_token, write_frame_images(dir, before, 100 + static_cast<int>(fi), summary)}};
    }
    last_scene = f.scene_token;
    const OrderedJson paths = write_frame_images(dir, f, static_cast<int>(fi), summary);
    // `history_frames` as the official converter writes it: most recent first.
    OrderedJson history = OrderedJson::object();
    for (auto it = scene_history.rbegin(); it != scene_history.rend(); ++it) history[it->first] = it->second;
    for (const DemoQuestion& q : frame_questions(f)) lists.add(f, q, paths, history);
    scene_history.emplace_back(f.frame_token, paths);
    if (variant == DemoVariant::kBenchmark) {
      for (const DemoQuestion& q : extra_questions(f)) lists.add(f, q, paths, history);
    }
    ++summary.frames;
    if (fi == 0 && variant == DemoVariant::kDemo) {
      add_broken_items(lists, f, paths);
      summary.broken_items = 3;
      summary.unanswerable_items = 2;
    }
  }
  summary.questions = static_cast<int>(lists.questions.size());
  summary.ground_truth_items = static_cast<int>(lists.ground_truth.size());
  summary.questions_file = dir / "questions.json";
  summary.ground_truth_file = dir / "gt.json";
  write_file_atomic(summary.questions_file, lists.questions.dump(2) + "\n");
  write_file_atomic(summary.ground_truth_file, lists.ground_truth.dump(2) + "\n");
  return summary;
}

}  // namespace drivevqa
