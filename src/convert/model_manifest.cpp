#include "convert/model_manifest.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vector>

#include "util/atomic_file.h"
#include "util/error.h"
#include "util/files.h"
#include "util/text.h"

namespace drivevqa {
namespace {

constexpr char kFormat[] = "drivevqa-model-manifest-1";
constexpr size_t kSampleBytes = size_t{1} << 20;
const char* const kFiles[] = {"model.gguf", "mmproj.gguf"};

struct FileSample {
  uint64_t size = 0;
  std::string hash;  // of the first and last MiB
};

// Throws ModelError naming the file when it cannot be read.
FileSample sample_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (fd >= 0) ::close(fd);
    throw ModelError(path.string() + ": cannot be read (" + unreadable_reason(path) + ")");
  }
  FileSample s;
  s.size = static_cast<uint64_t>(st.st_size);
  std::vector<char> buf(kSampleBytes);
  uint64_t h = fnv1a64(std::to_string(s.size));
  const uint64_t tail = s.size > kSampleBytes ? s.size - kSampleBytes : 0;
  for (const uint64_t at : {uint64_t{0}, tail}) {
    ssize_t n;
    while ((n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(at))) < 0 && errno == EINTR) {
    }
    if (n < 0) {
      ::close(fd);
      throw ModelError(path.string() + ": read failed");
    }
    h = fnv1a64(buf.data(), static_cast<size_t>(n), h);
  }
  ::close(fd);
  s.hash = hex64(h);
  return s;
}

}  // namespace

void write_model_manifest(const std::filesystem::path& dir, const ModelManifest& m) {
  nlohmann::json j;
  j["format"] = kFormat;
  j["drivevqa"] = "0.1.0";
  j["source"] = m.source;
  j["source_fingerprint"] = m.source_fingerprint;
  j["outtype"] = m.outtype;
  j["quantization"] = m.quantization;
  for (const char* name : kFiles) {
    const FileSample s = sample_file(dir / name);
    j["files"][name] = {{"size", s.size}, {"first_last_mib_fnv1a64", s.hash}};
  }
  write_file_atomic(dir / kModelManifestName, j.dump(2) + "\n");
}

void check_model_manifest(const std::filesystem::path& dir) {
  const std::filesystem::path file = dir / kModelManifestName;
  std::error_code ec;
  if (!std::filesystem::exists(std::filesystem::symlink_status(file, ec))) return;
  const std::string text = as_model_error([&] { return read_text_file(file, {.max_bytes = 1 << 20}); });
  const std::string broken = file.string() + ": not a drivevqa model manifest; remove the folder and convert again";
  if (json_too_deep_at(text) != 0) throw ModelError(broken);  // before parsing: nlohmann recurses
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object() || j.value("format", "") != kFormat || !j.contains("files") ||
      !j["files"].is_object()) {
    throw ModelError(broken);
  }
  for (const char* name : kFiles) {
    const auto& f = j["files"];
    if (!f.contains(name) || !f[name].is_object()) throw ModelError(broken);
    const FileSample s = sample_file(dir / name);
    const uint64_t size = f[name].value("size", uint64_t{0});
    const std::string hash = f[name].value("first_last_mib_fnv1a64", "");
    if (s.size != size || s.hash != hash) {
      throw ModelError((dir / name).string() + ": does not match " + file.string() + " (" +
                       (s.size != size ? "size " + std::to_string(s.size) + ", recorded " + std::to_string(size)
                                       : std::string("same size, different content")) +
                       "): the folder mixes files of different conversions; convert again");
    }
  }
}

}  // namespace drivevqa
