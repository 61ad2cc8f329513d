#include "convert/model_source.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "convert/content_key.h"
#include "convert/hf_config.h"
#include "convert/hf_to_gguf.h"
#include "convert/model_manifest.h"
#include "util/cache_publish.h"
#include "util/files.h"
#include "util/error.h"
#include "util/text.h"

namespace drivevqa {
namespace {

// Bump when the converter's output changes, so old cache entries are not reused.
constexpr char kConverterVersion[] = "drivevqa-convert-1";

// A snapshot is complete when it has config.json and every shard its index names (a download in
// progress links each file in only once it has arrived).
bool complete_snapshot(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!is_hf_model_dir(dir)) return false;
  const auto index = dir / "model.safetensors.index.json";
  if (!std::filesystem::exists(index, ec)) return true;
  try {
    const std::string text = read_text_file(index, {.max_bytes = 64 << 20});
    if (json_too_deep_at(text) != 0) return false;
    const nlohmann::json j = nlohmann::json::parse(text);
    for (const auto& [tensor, file] : j.at("weight_map").items()) {
      if (!std::filesystem::is_regular_file(dir / file.get<std::string>(), ec)) return false;
    }
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

// The snapshot of a Hugging Face cache root: the one refs/main names, else the newest complete one.
std::filesystem::path hf_cache_snapshot(const std::filesystem::path& root) {
  std::error_code ec;
  std::string ref;
  if (std::filesystem::is_regular_file(root / "refs" / "main", ec)) {
    try {
      ref = std::string(trim_spaces(read_text_file(root / "refs" / "main", {.max_bytes = 4096})));
    } catch (const InputError& e) {
      spdlog::warn("{}", e.what());
    }
  }
  const bool ref_ok = !ref.empty() && ref.find('/') == std::string::npos && ref != "." && ref != "..";
  if (ref_ok && complete_snapshot(root / "snapshots" / ref)) return root / "snapshots" / ref;
  std::filesystem::path best;
  std::filesystem::file_time_type best_time{};
  for (const auto& e : std::filesystem::directory_iterator(root / "snapshots", ec)) {
    if (!e.is_directory(ec) || !complete_snapshot(e.path())) continue;
    const auto t = std::filesystem::last_write_time(e.path(), ec);
    if (best.empty() || t > best_time) {
      best = e.path();
      best_time = t;
    }
  }
  if (best.empty()) throw ModelError(root.string() + ": snapshots/ holds no complete snapshot (config.json and every shard)");
  spdlog::warn("{}: {}; using the newest complete snapshot {}", root.string(),
               ref.empty() ? std::string("no refs/main")
                           : "refs/main names " + ref + ", which is not a complete snapshot",
               best.filename().string());
  return best;
}

}  // namespace

std::filesystem::path default_cache_dir() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg && *xdg) return std::filesystem::path(xdg) / "drivevqa" / "models";
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home && *home ? home : "/tmp") / ".cache" / "drivevqa" / "models";
}

// resolve_model without the exit-code mapping.
static ModelFiles resolve_model_files(const std::filesystem::path& source, const ModelSourceOptions& options) {
  std::error_code ec;
  if (std::filesystem::exists(source / "model.gguf", ec) || std::filesystem::exists(source / "mmproj.gguf", ec)) {
    ModelFiles files = find_model_files(source);
    check_model_manifest(source);
    return files;
  }
  std::filesystem::path hf = source;
  if (std::filesystem::is_directory(source / "snapshots", ec)) hf = hf_cache_snapshot(source);
  if (!is_hf_model_dir(hf)) {
    throw ModelError(source.string() + ": not a model folder (expected model.gguf + mmproj.gguf, a Hugging Face "
                     "folder with config.json and *.safetensors, or a Hugging Face cache root with snapshots/)");
  }
  const std::string fingerprint = content_key({hf}, std::string(kConverterVersion) + " " + ggml_type_name(options.outtype));
  const std::string key = content_label(hf) + "-" + fingerprint;  // the same for every spelling of the folder
  const std::filesystem::path dir = build_cached(cache_root(options), key, "conversion of " + hf.string(),
                                                 [&](const std::filesystem::path& partial) {
    const ConvertReport r = convert_hf_model(hf, partial, options.outtype);
    spdlog::info("converted {} tensors ({} MB) in {:.1f} s", r.tensors, r.bytes_read >> 20, r.seconds);
    write_model_manifest(partial, {hf.string(), fingerprint, ggml_type_name(options.outtype), ""});
  });
  ModelFiles files = find_model_files(dir);
  check_model_manifest(dir);
  return files;
}

ModelFiles resolve_model(const std::filesystem::path& source, const ModelSourceOptions& options) {
  return as_model_error([&] { return resolve_model_files(source, options); });
}

std::filesystem::path cache_root(const ModelSourceOptions& options) {
  return options.cache_dir.empty() ? default_cache_dir() : options.cache_dir;
}

std::filesystem::path cache_home(const ModelSourceOptions& options) {
  std::error_code ec;
  std::filesystem::path root = std::filesystem::absolute(cache_root(options), ec).lexically_normal();
  if (root.filename().empty()) root = root.parent_path();  // "models/" names the folder "models"
  return root.parent_path();
}

std::filesystem::path build_cached(const std::filesystem::path& cache, const std::string& key, const std::string& what,
                                   const std::function<void(const std::filesystem::path&)>& build) {
  return publish_cached_folder(cache, key, what, build);
}

}  // namespace drivevqa
