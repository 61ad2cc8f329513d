// The converted Track 1 question file (shared/docs/track1.md §1): a JSON list of objects.
//
// What must hold: every item keeps its original JSON object untouched (fields, order, values), so
// that results can be written back with only new fields added. An item that cannot be answered
// (no question, no usable image) is still returned, with `problem` saying why.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <filesystem>
#include <string_view>
#include <string>
#include <vector>

namespace drivevqa {

// The camera order of every item's images and of every prompt (the seed's order).
inline constexpr std::array<std::string_view, 6> kCameraOrder = {
    "CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_RIGHT", "CAM_BACK_LEFT"};

// Track 1 questions are under 1 KB; a longer one is refused (error answer) rather than evaluated.
inline constexpr size_t kMaxQuestionBytes = 16384;

struct CameraImage {
  std::string camera;               // CAM_FRONT ... or IMAGE_<n> for unnamed images
  std::filesystem::path path;       // joined with the image base folder
};

// An earlier key frame of the item's scene (`history_frames`, as the official converter writes it
// with --use-temporal): its token and its camera images that exist, in camera order.
struct HistoryFrame {
  std::string frame_token;
  std::vector<CameraImage> images;
};

// More earlier frames than any run uses; the rest of a longer list is ignored with a warning.
inline constexpr size_t kMaxHistoryFrames = 16;

struct QuestionItem {
  size_t index = 0;                 // position in the input list
  nlohmann::ordered_json original;  // the item exactly as read
  std::string question;             // from `question`, else `prompt`
  std::string category;             // lower-cased `category`, may be empty
  std::string scene_token;
  std::string frame_token;
  std::vector<CameraImage> images;  // camera order, at most max_images, existing files only
  std::vector<HistoryFrame> history;  // most recent first (0.5 s earlier, 1.0 s, ...); empty when absent
  std::vector<std::string> history_warnings;  // what was wrong in `history_frames` (said only when history is used)
  std::vector<std::string> warnings;  // skipped images, one line each
  std::string problem;              // non-empty: the item gets an error answer instead of a model answer
};

struct DatasetOptions {
  std::filesystem::path image_base_dir;
  size_t max_images = 6;
  size_t limit = 0;                 // 0: all items
  bool check_images = true;         // false: keep listed images without looking at the files
};

// Throws InputError naming the file and the position when it is not a JSON list of objects.
std::vector<QuestionItem> read_question_file(const std::filesystem::path& path, const DatasetOptions& options);

// Same, from JSON text already in memory (`name` is used in messages).
std::vector<QuestionItem> parse_question_list(const std::string& text, const std::string& name,
                                              const DatasetOptions& options);

}  // namespace drivevqa
