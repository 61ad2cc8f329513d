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
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const auto& r : results) list.push_back(r);
  // Replacement characters instead of an exception for any invalid UTF-8 a model may produce.
  write_file_atomic(path, list.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n");
}

}  // namespace drivevqa
