#include "dataset/question_file.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "util/error.h"
#include "util/files.h"
#include "util/text.h"

namespace drivevqa {
namespace {

using OrderedJson = nlohmann::ordered_json;

// Images as (camera, relative path) in the fixed camera order, then any other named images.
std::vector<std::pair<std::string, std::string>> listed_images(const OrderedJson& item, std::string& problem) {
  std::vector<std::pair<std::string, std::string>> listed;
  const OrderedJson* source = nullptr;
  if (auto it = item.find("img_paths"); it != item.end()) source = &*it;
  else if (auto it2 = item.find("image_path"); it2 != item.end()) source = &*it2;
  if (!source) {
    problem = "item has no img_paths";
    return listed;
  }
  if (source->is_string()) {
    listed.emplace_back("IMAGE_1", source->get<std::string>());
  } else if (source->is_array()) {
    for (const OrderedJson& p : *source) {
      if (p.is_string()) listed.emplace_back("IMAGE_" + std::to_string(listed.size() + 1), p.get<std::string>());
    }
  } else if (source->is_object()) {
    for (std::string_view camera : kCameraOrder) {
      const auto it = source->find(std::string(camera));
      if (it != source->end() && it->is_string()) listed.emplace_back(camera, it->get<std::string>());
    }
    for (const auto& [camera, p] : source->items()) {
      const bool known = std::find(kCameraOrder.begin(), kCameraOrder.end(), camera) != kCameraOrder.end();
      if (!known && p.is_string()) listed.emplace_back(camera, p.get<std::string>());
    }
  } else {
    problem = "img_paths is neither an object, a list nor a string";
  }
  return listed;
}

std::filesystem::path image_path(const DatasetOptions& options, const std::string& rel) {
  return options.image_base_dir.empty() ? std::filesystem::path(rel) : options.image_base_dir / rel;
}

// `history_frames`: { "<earlier frame_token>": { "<CAM>": "<path>", ... }, ... }, most recent first.
// Anything else in it is skipped with a warning (history is extra context, never a reason to fail);
// its files are looked at only by a run that uses them.
void read_history(const OrderedJson& object, const DatasetOptions& options, QuestionItem& item) {
  const auto field = object.find("history_frames");
  if (field == object.end() || field->is_null()) return;
  if (!field->is_object()) {
    item.history_warnings.push_back("history_frames is not an object of frame token -> camera images, ignored");
    return;
  }
  for (const auto& [token, cameras] : field->items()) {
    if (item.history.size() >= kMaxHistoryFrames) {
      item.history_warnings.push_back("history_frames lists more than " + std::to_string(kMaxHistoryFrames) +
                                      " frames; the earlier ones are ignored");
      break;
    }
    if (!cameras.is_object()) {
      item.history_warnings.push_back("history frame " + repair_utf8(token.substr(0, 64)) + " is not an object of camera -> path, ignored");
      continue;
    }
    HistoryFrame frame{token, {}};
    for (std::string_view camera : kCameraOrder) {
      const auto it = cameras.find(std::string(camera));
      if (it != cameras.end() && it->is_string()) frame.images.push_back({std::string(camera), image_path(options, it->get<std::string>())});
    }
    item.history.push_back(std::move(frame));
  }
}

QuestionItem make_item(size_t index, OrderedJson original, const DatasetOptions& options) {
  QuestionItem item;
  item.index = index;
  item.original = std::move(original);  // moved out of the parsed list: one copy of the file in memory
  const OrderedJson& object = item.original;
  item.question = string_field(object, "question");
  if (item.question.empty()) item.question = string_field(object, "prompt");
  item.category = to_lower(string_field(object, "category"));
  item.scene_token = string_field(object, "scene_token");
  item.frame_token = string_field(object, "frame_token");
  std::string problem;
  for (const auto& [camera, rel] : listed_images(object, problem)) {
    if (item.images.size() >= options.max_images) break;
    const std::filesystem::path path = image_path(options, rel);
    if (options.check_images) {
      if (const std::string why = unreadable_reason(path); !why.empty()) {
        item.warnings.push_back(camera + " image " + path.string() + ": " + why + ", skipped");
        continue;
      }
    }
    item.images.push_back({camera, path});
  }
  read_history(object, options, item);
  if (item.question.find_first_not_of(" \t\r\n") == std::string::npos) {
    item.problem = "item has no question (neither `question` nor `prompt`)";
  } else if (item.question.size() > kMaxQuestionBytes) {
    item.problem = "question is " + std::to_string(item.question.size()) + " bytes long, more than the limit of " +
                   std::to_string(kMaxQuestionBytes);
  } else if (!problem.empty()) {
    item.problem = problem;
  } else if (item.images.empty()) {
    item.problem = "item has no usable image";
  }
  return item;
}

}  // namespace

std::vector<QuestionItem> parse_question_list(const std::string& text, const std::string& name,
                                              const DatasetOptions& options) {
  size_t replaced = 0;
  OrderedJson list = parse_ordered_json(repair_utf8(text, &replaced), name);
  if (replaced > 0) spdlog::warn("{}: {} bytes that are not UTF-8 replaced by U+FFFD", name, replaced);
  if (!list.is_array()) throw InputError(name + ": expected a JSON list of question objects, found a " + list.type_name());
  std::vector<QuestionItem> items;
  const size_t n = options.limit > 0 ? std::min(options.limit, list.size()) : list.size();
  items.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (!list[i].is_object()) {
      QuestionItem item;  // costs this item only: an error answer, the value kept in the results
      item.index = i;
      item.problem = std::string("item is a ") + list[i].type_name() + ", expected an object";
      item.original = std::move(list[i]);
      items.push_back(std::move(item));
      continue;
    }
    items.push_back(make_item(i, std::move(list[i]), options));
  }
  return items;
}

std::vector<QuestionItem> read_question_file(const std::filesystem::path& path, const DatasetOptions& options) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  return parse_question_list(std::string(bytes.begin(), bytes.end()), path.string(), options);
}

}  // namespace drivevqa
