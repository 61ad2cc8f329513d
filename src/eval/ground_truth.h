// Reading the two sides of an evaluation (ground truth, predictions) and pairing their items.
//
// Ground truth comes in either form (shared/docs/track1.md §1):
//   (a) the converted list: [{scene_token, frame_token, question (or prompt), answer, category?}, ...]
//   (b) DriveLM/DriveBench's nested form: {scene: {key_frames: {frame: {QA: {perception: [{Q, A}], ...}}}}}
//       (the category is the QA key, lower-cased; other keys beside key_frames / QA are ignored).
// Predictions are a drivevqa results file: the converted list with `answer` filled.
//
// Pairing is by (scene_token, frame_token, question), compared exactly (the scorer must not alter
// questions). When a key occurs several times (the same question twice in a frame), the k-th ground
// truth item with it pairs with the k-th prediction with it. Items left on either side are listed,
// never dropped silently. A prediction item without a question (a broken input item) cannot be
// paired: it is listed among the unpaired predictions with the reason.
//
// What is thrown: InputError naming the file and the position (item index, or scene/frame/category
// path) when a file is not JSON, nests deeper than kMaxJsonDepth, is not a list (or, for ground
// truth, an object), has an item that is not an object, or lacks a required field (ground truth:
// scene_token, frame_token, question, answer as strings; predictions: scene_token, frame_token and
// answer as strings).
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "util/text.h"  // kMaxJsonDepth, shared by every JSON reader

namespace drivevqa {

struct EvalItem {
  size_t index = 0;         // position in its file: the list index, or the running number in the nested form
  std::string where;        // the position in words: "item 12", or "scene 9f1f…/frame 9a11…/perception[3]"
  std::string scene_token;
  std::string frame_token;
  std::string question;     // empty only for an unpairable prediction
  std::string category;     // lower-cased; may be empty in list files
  std::string answer;
};

struct AnswerFile {
  std::string name;               // the path, for messages
  std::vector<EvalItem> items;
  size_t replaced_bytes = 0;      // invalid UTF-8 bytes read as U+FFFD
};

// Parses JSON with a depth limit and UTF-8 repair. Throws InputError "<name>: ...".
nlohmann::ordered_json parse_eval_json(std::string_view text, const std::string& name, size_t* replaced_bytes = nullptr);

AnswerFile parse_ground_truth(std::string_view text, const std::string& name);
AnswerFile read_ground_truth(const std::filesystem::path& path);

AnswerFile parse_predictions(std::string_view text, const std::string& name);
AnswerFile read_predictions(const std::filesystem::path& path);

struct UnpairedItem {
  size_t index = 0;        // into AnswerFile::items
  std::string reason;      // "no prediction", "no ground truth", "no question"
};

struct Pairing {
  std::vector<std::pair<size_t, size_t>> pairs;      // (ground truth index, prediction index), ground truth order
  std::vector<UnpairedItem> missing_predictions;     // ground truth items nobody answered
  std::vector<UnpairedItem> extra_predictions;       // predictions with no ground truth item
};

Pairing pair_items(const AnswerFile& ground_truth, const AnswerFile& predictions);

// "#12 What is the moving status of object <c1,CAM_FRO…": an item named for people.
std::string describe_item(const EvalItem& item, size_t max_question_chars = 60);

}  // namespace drivevqa
