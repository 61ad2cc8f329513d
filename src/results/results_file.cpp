#include "results/results_file.h"

#include "util/atomic_file.h"
#include "util/files.h"

namespace drivevqa {

nlohmann::ordered_json result_json(const QuestionItem& item, const ItemResult& result) {
  nlohmann::ordered_json out = item.original;
  if (!out.is_object()) out = nlohmann::ordered_json{{"item", item.original}};  // a malformed item, kept as given
  out["subtask"] = std::string(subtask_name(result.subtask));
  out["model_routed"] = std::string(model_size_name(result.routed));
  out["model_used"] = result.model_used;
  out["answer"] = result.answer;
  return out;
}

void write_results(const std::filesystem::path& path, const std::vector<nlohmann::ordered_json>& results) {
  // One compact item per line: pretty-printing indents every level of an item's nested fields,
  // which can make the file many times larger than its input. Replacement characters instead of
  // an exception for any invalid UTF-8 a model may produce.
  std::string text = "[";
  for (size_t i = 0; i < results.size(); ++i) {
    text += i == 0 ? "\n" : ",\n";
    text += results[i].dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  }
  text += results.empty() ? "]\n" : "\n]\n";
  write_file_atomic(path, text);
}

}  // namespace drivevqa
