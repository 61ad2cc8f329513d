#include "eval/ground_truth.h"

#include <spdlog/spdlog.h>

#include <deque>
#include <unordered_map>

#include "util/error.h"
#include "util/files.h"
#include "util/text.h"

namespace drivevqa {
namespace {

using OrderedJson = nlohmann::ordered_json;

std::string short_token(const std::string& token) { return token.size() > 8 ? token.substr(0, 8) + "…" : token; }

// `key` as a string, or InputError naming the file, the position and the field.
std::string required_string(const OrderedJson& object, const char* key, const std::string& name, const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end()) throw InputError(name + ": " + where + ": no \"" + key + "\" field");
  if (!it->is_string()) throw InputError(name + ": " + where + ": \"" + key + "\" is not a string");
  return it->get<std::string>();
}

// `question`, else `prompt` (some tools write that); "" when neither is present.
std::string question_of(const OrderedJson& item, const std::string& name, const std::string& where) {
  for (const char* key : {"question", "prompt"}) {
    if (item.contains(key)) return required_string(item, key, name, where);
  }
  return "";
}

AnswerFile read_list(const OrderedJson& root, const std::string& name, bool ground_truth) {
  AnswerFile file;
  file.name = name;
  file.items.reserve(root.size());
  for (size_t i = 0; i < root.size(); ++i) {
    const OrderedJson& item = root[i];
    const std::string where = "item " + std::to_string(i);
    if (!item.is_object()) throw InputError(name + ": " + where + " is not an object");
    EvalItem e;
    e.index = i;
    e.where = where;
    e.scene_token = required_string(item, "scene_token", name, where);
    e.frame_token = required_string(item, "frame_token", name, where);
    e.question = question_of(item, name, where);
    if (ground_truth && e.question.empty()) throw InputError(name + ": " + where + ": no question");
    e.answer = required_string(item, "answer", name, where);
    e.category = to_lower(string_field(item, "category"));
    file.items.push_back(std::move(e));
  }
  return file;
}

AnswerFile read_nested(const OrderedJson& root, const std::string& name) {
  AnswerFile file;
  file.name = name;
  for (const auto& [scene, scene_value] : root.items()) {
    const std::string scene_where = "scene " + short_token(scene);
    const auto frames = scene_value.is_object() ? scene_value.find("key_frames") : scene_value.end();
    if (frames == scene_value.end() || !frames->is_object()) {
      throw InputError(name + ": " + scene_where + ": no \"key_frames\" object");
    }
    for (const auto& [frame, frame_value] : frames->items()) {
      const std::string frame_where = scene_where + "/frame " + short_token(frame);
      const auto qa = frame_value.is_object() ? frame_value.find("QA") : frame_value.end();
      if (qa == frame_value.end() || !qa->is_object()) throw InputError(name + ": " + frame_where + ": no \"QA\" object");
      for (const auto& [category, list] : qa->items()) {
        if (!list.is_array()) throw InputError(name + ": " + frame_where + ": QA \"" + category + "\" is not a list");
        for (size_t j = 0; j < list.size(); ++j) {
          const std::string where = frame_where + "/" + category + "[" + std::to_string(j) + "]";
          if (!list[j].is_object()) throw InputError(name + ": " + where + " is not an object");
          EvalItem e;
          e.index = file.items.size();
          e.where = where;
          e.scene_token = scene;
          e.frame_token = frame;
          e.question = required_string(list[j], "Q", name, where);
          if (e.question.empty()) throw InputError(name + ": " + where + ": empty \"Q\"");
          e.answer = required_string(list[j], "A", name, where);
          e.category = to_lower(category);
          file.items.push_back(std::move(e));
        }
      }
    }
  }
  return file;
}

}  // namespace

OrderedJson parse_eval_json(std::string_view text, const std::string& name, size_t* replaced_bytes) {
  size_t replaced = 0;
  const std::string repaired = repair_utf8(text, &replaced);
  if (replaced_bytes) *replaced_bytes = replaced;
  if (replaced > 0) spdlog::warn("{}: {} bytes that are not UTF-8 were read as U+FFFD", name, replaced);
  return parse_ordered_json(repaired, name);
}

AnswerFile parse_ground_truth(std::string_view text, const std::string& name) {
  size_t replaced = 0;
  const OrderedJson root = parse_eval_json(text, name, &replaced);
  AnswerFile file;
  if (root.is_array()) {
    file = read_list(root, name, true);
  } else if (root.is_object()) {
    file = read_nested(root, name);
  } else {
    throw InputError(name + ": ground truth must be a JSON list of items or DriveLM's nested object");
  }
  if (file.items.empty()) throw InputError(name + ": the ground truth has no questions");
  size_t empty = 0;
  for (const EvalItem& e : file.items) empty += e.answer.empty() ? 1 : 0;
  if (empty == file.items.size()) {
    throw InputError(name + ": every ground-truth answer is empty (a question file, not ground truth?)");
  }
  if (empty > 0) spdlog::warn("{}: {} ground-truth answers are empty", name, empty);
  file.replaced_bytes = replaced;
  return file;
}

AnswerFile read_ground_truth(const std::filesystem::path& path) {
  return parse_ground_truth(read_text_file(path), path.string());
}

AnswerFile parse_predictions(std::string_view text, const std::string& name) {
  size_t replaced = 0;
  const OrderedJson root = parse_eval_json(text, name, &replaced);
  if (!root.is_array()) throw InputError(name + ": predictions must be a JSON list of items (a drivevqa results file)");
  AnswerFile file = read_list(root, name, false);
  file.replaced_bytes = replaced;
  return file;
}

AnswerFile read_predictions(const std::filesystem::path& path) {
  return parse_predictions(read_text_file(path), path.string());
}

Pairing pair_items(const AnswerFile& ground_truth, const AnswerFile& predictions) {
  const auto key_of = [](const EvalItem& e) {
    std::string key;
    key.reserve(e.scene_token.size() + e.frame_token.size() + e.question.size() + 2);
    key.append(e.scene_token).push_back('\x1f');
    key.append(e.frame_token).push_back('\x1f');
    key.append(e.question);
    return key;
  };
  // Per key, the predictions not yet paired, in file order: duplicates pair in order.
  std::unordered_map<std::string, std::deque<size_t>> waiting;
  Pairing pairing;
  std::vector<bool> paired(predictions.items.size(), false);
  for (size_t p = 0; p < predictions.items.size(); ++p) {
    if (!predictions.items[p].question.empty()) waiting[key_of(predictions.items[p])].push_back(p);
  }
  for (size_t g = 0; g < ground_truth.items.size(); ++g) {
    const auto it = waiting.find(key_of(ground_truth.items[g]));
    if (it == waiting.end() || it->second.empty()) {
      pairing.missing_predictions.push_back({g, "no prediction"});
      continue;
    }
    const size_t p = it->second.front();
    it->second.pop_front();
    paired[p] = true;
    pairing.pairs.emplace_back(g, p);
  }
  for (size_t p = 0; p < predictions.items.size(); ++p) {
    if (paired[p]) continue;
    pairing.extra_predictions.push_back({p, predictions.items[p].question.empty() ? "no question" : "no ground truth"});
  }
  return pairing;
}

std::string describe_item(const EvalItem& item, size_t max_question_chars) {
  std::string q = item.question;
  if (q.size() > max_question_chars) {
    size_t cut = max_question_chars;
    while (cut > 0 && (static_cast<unsigned char>(q[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 sequence
    q = q.substr(0, cut) + "…";
  }
  // Appended, not "#" + string: GCC 12 warns falsely on that form (-Wrestrict).
  std::string out = "#";
  out.append(std::to_string(item.index)).append(" ").append(q.empty() ? "(no question)" : q);
  return out;
}

}  // namespace drivevqa
