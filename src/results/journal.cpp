#include "results/journal.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "util/error.h"
#include "util/text.h"

namespace drivevqa {
namespace {

using Json = nlohmann::json;

Json header_json(const JournalKey& key) {
  return Json{{"drivevqa_journal", 1}, {"input", key.input_hash}, {"settings", key.settings_hash}};
}

ItemResult entry_result(const Json& j) {
  ItemResult r;
  r.subtask = subtask_from_name(j.at("subtask").get<std::string>());
  r.routed = j.at("model_routed").get<std::string>() == "72B" ? ModelSize::k72B : ModelSize::k7B;
  r.model_used = j.at("model_used").get<std::string>();
  r.answer = j.at("answer").get<std::string>();
  r.is_error = j.at("error").get<bool>();
  r.generated_tokens = json_number<size_t>(j.value("tokens", Json(0))).value_or(0);
  return r;
}

}  // namespace

std::string fingerprint(const void* data, size_t size) {
  return hex64(fnv1a64(data, size)) + "-" + std::to_string(size);
}

Journal::Journal(const std::filesystem::path& path, const JournalKey& key, bool overwrite) : path_(path) {
  const std::string header = header_json(key).dump();
  size_t good_bytes = 0;  // length of the trusted prefix of an existing journal
  bool resume = false;
  if (std::ifstream in(path, std::ios::binary); in && !overwrite) {
    std::string line;
    size_t offset = 0;
    bool first = true;
    while (std::getline(in, line)) {
      const bool complete = !in.eof();  // the last line of a torn write has no newline
      offset += line.size() + 1;
      if (!complete) break;
      if (first) {
        if (line != header) {
          // A journal without answers (a run that failed before answering) holds nothing to lose.
          std::string next;
          if (!std::getline(in, next) || next.empty()) break;
          throw UsageError(path.string() + ": this journal belongs to a different input file or different settings; "
                           "pass --overwrite to start afresh (its answers will be discarded)");
        }
        first = false;
        resume = true;
        good_bytes = offset;
        continue;
      }
      try {
        const Json j = Json::parse(line);
        const auto index = json_number<size_t>(j.at("index"));
        if (!index) break;  // not a line this program wrote: the trusted prefix ends here
        done_[*index] = entry_result(j);
        good_bytes = offset;
      } catch (const std::exception&) {
        break;  // a damaged line ends the trusted prefix
      }
    }
  }
  if (resume) {
    if (::truncate(path.c_str(), static_cast<off_t>(good_bytes)) != 0) {
      throw OutputError(path.string() + ": cannot trim the journal (" + std::strerror(errno) + ")");
    }
    file_ = std::fopen(path.c_str(), "ab");
  } else {
    file_ = std::fopen(path.c_str(), "wb");
  }
  if (!file_) throw OutputError(path.string() + ": cannot open the journal (" + std::strerror(errno) + ")");
  if (!resume) {
    if (std::fprintf(file_, "%s\n", header.c_str()) < 0 || std::fflush(file_) != 0 || ::fdatasync(fileno(file_)) != 0) {
      throw OutputError(path.string() + ": cannot write the journal (" + std::strerror(errno) + ")");
    }
  }
  if (!done_.empty()) spdlog::info("resuming: {} answers already in {}", done_.size(), path.string());
}

Journal::~Journal() {
  if (file_) std::fclose(file_);
}

void Journal::append(size_t index, const ItemResult& r) {
  const Json j{{"index", index},
               {"subtask", std::string(subtask_name(r.subtask))},
               {"model_routed", std::string(model_size_name(r.routed))},
               {"model_used", r.model_used},
               {"answer", r.answer},
               {"error", r.is_error},
               {"tokens", r.generated_tokens}};
  const std::string line = j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0 ||
      ::fdatasync(fileno(file_)) != 0) {
    throw OutputError(path_.string() + ": cannot append to the journal (" + std::strerror(errno) + ")");
  }
  done_[index] = r;
}

}  // namespace drivevqa
