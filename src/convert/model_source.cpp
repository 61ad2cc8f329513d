#include "convert/model_source.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "convert/hf_config.h"
#include "convert/hf_to_gguf.h"
#include "util/error.h"
#include "util/text.h"

namespace drivevqa {
namespace {

// Bump when the converter's output changes, so old cache entries are not reused.
constexpr char kConverterVersion[] = "drivevqa-convert-1";

std::filesystem::path newest_snapshot(const std::filesystem::path& root) {
  std::filesystem::path best;
  std::filesystem::file_time_type best_time{};
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(root / "snapshots", ec)) {
    if (!e.is_directory(ec)) continue;
    const auto t = std::filesystem::last_write_time(e.path(), ec);
    if (best.empty() || t > best_time) {
      best = e.path();
      best_time = t;
    }
  }
  if (best.empty()) throw ModelError(root.string() + ": snapshots/ holds no snapshot folder");
  return best;
}

std::string file_line(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return {};
  return path.string() + " " + std::to_string(st.st_size) + " " + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

}  // namespace

std::string files_fingerprint(const std::vector<std::filesystem::path>& paths, const std::string& settings) {
  std::vector<std::string> lines;
  std::error_code ec;
  for (const auto& p : paths) {
    if (std::filesystem::is_directory(p, ec)) {
      for (const auto& e : std::filesystem::directory_iterator(p, ec)) {
        if (std::string line = file_line(e.path()); !line.empty()) lines.push_back(std::move(line));
      }
    } else if (std::string line = file_line(p); !line.empty()) {
      lines.push_back(std::move(line));
    }
  }
  std::sort(lines.begin(), lines.end());
  std::string text = std::string(kConverterVersion) + " " + settings + "\n";
  for (const auto& l : lines) text += l + "\n";
  return hex64(fnv1a64(text));
}

namespace {

// Leftovers of killed conversions (their process is gone) only take disk space.
void remove_abandoned_conversions(const std::filesystem::path& cache) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(cache, ec)) {
    const std::string name = e.path().filename().string();
    const size_t at = name.rfind(".partial-");
    if (at == std::string::npos) continue;
    const long pid = std::strtol(name.c_str() + at + 9, nullptr, 10);
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      spdlog::info("removing {}, left by an interrupted conversion", e.path().string());
      std::filesystem::remove_all(e.path(), ec);
    }
  }
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
    return find_model_files(source);
  }
  std::filesystem::path hf = source;
  if (std::filesystem::is_directory(source / "snapshots", ec)) hf = newest_snapshot(source);
  if (!is_hf_model_dir(hf)) {
    throw ModelError(source.string() + ": not a model folder (expected model.gguf + mmproj.gguf, a Hugging Face "
                     "folder with config.json and *.safetensors, or a Hugging Face cache root with snapshots/)");
  }
  const std::string key = hf.filename().string() + "-" + files_fingerprint({hf}, ggml_type_name(options.outtype));
  const std::filesystem::path dir = build_cached(cache_root(options), key, "conversion of " + hf.string(),
                                                 [&](const std::filesystem::path& partial) {
    const ConvertReport r = convert_hf_model(hf, partial, options.outtype);
    spdlog::info("converted {} tensors ({} MB) in {:.1f} s", r.tensors, r.bytes_read >> 20, r.seconds);
  });
  return find_model_files(dir);
}

ModelFiles resolve_model(const std::filesystem::path& source, const ModelSourceOptions& options) {
  return as_model_error([&] { return resolve_model_files(source, options); });
}

std::filesystem::path cache_root(const ModelSourceOptions& options) {
  return options.cache_dir.empty() ? default_cache_dir() : options.cache_dir;
}

std::filesystem::path build_cached(const std::filesystem::path& cache, const std::string& key, const std::string& what,
                                   const std::function<void(const std::filesystem::path&)>& build) {
  std::error_code ec;
  const std::filesystem::path target = cache / key;
  if (std::filesystem::exists(target / ".complete", ec)) {
    spdlog::info("using the cached {} ({})", what, target.string());
    return target;
  }
  spdlog::info("making the {} in {} (once; later runs reuse it)", what, target.string());
  std::filesystem::create_directories(cache, ec);
  if (ec) throw OutputError(cache.string() + ": cannot create the model cache (" + ec.message() + ")");
  remove_abandoned_conversions(cache);
  const std::filesystem::path partial = cache / (key + ".partial-" + std::to_string(::getpid()));
  std::filesystem::remove_all(partial, ec);
  std::filesystem::create_directories(partial, ec);
  try {
    build(partial);
    std::ofstream(partial / ".complete") << key << "\n";
  } catch (...) {
    std::filesystem::remove_all(partial, ec);
    throw;
  }
  std::filesystem::remove_all(target, ec);  // an incomplete entry from an older layout
  std::filesystem::rename(partial, target, ec);
  if (ec) {
    // Another process may have finished the same entry first; its result is as good.
    std::filesystem::remove_all(partial, ec);
    if (!std::filesystem::exists(target / ".complete", ec)) throw OutputError(target.string() + ": cannot finish the " + what);
  }
  return target;
}

}  // namespace drivevqa
