#include "convert/safetensors.h"

#include <fcntl.h>
#include <ggml.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "util/error.h"
#include "util/files.h"
#include "util/text.h"

namespace drivevqa {
namespace {

// Headers of real checkpoints are a few hundred KB; anything far beyond is a broken file.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

size_t dtype_size(StDtype d) { return d == StDtype::kF32 ? 4 : 2; }

StDtype parse_dtype(const std::string& s, const std::string& where) {
  if (s == "F32") return StDtype::kF32;
  if (s == "F16") return StDtype::kF16;
  if (s == "BF16") return StDtype::kBF16;
  throw InputError(where + ": dtype " + s + " is not supported (F32, F16 and BF16 are)");
}

}  // namespace

int64_t TensorView::element_count() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<float> TensorView::to_f32() const {
  std::vector<float> out;
  to_f32(out);
  return out;
}

void TensorView::to_f32(std::vector<float>& out) const {
  const size_t n = static_cast<size_t>(element_count());
  out.resize(n);
  switch (dtype) {
    case StDtype::kF32: std::memcpy(out.data(), data, n * 4); break;
    case StDtype::kF16: ggml_fp16_to_fp32_row(reinterpret_cast<const ggml_fp16_t*>(data), out.data(), static_cast<int64_t>(n)); break;
    case StDtype::kBF16: ggml_bf16_to_fp32_row(reinterpret_cast<const ggml_bf16_t*>(data), out.data(), static_cast<int64_t>(n)); break;
  }
}

std::map<std::string, TensorView> parse_safetensors_header(const std::string& header, size_t data_offset,
                                                            size_t file_size, const uint8_t* base,
                                                            const std::string& name,
                                                            std::map<std::string, std::string>* metadata) {
  const nlohmann::json j = parse_json(header, name + " (safetensors header)");
  if (!j.is_object()) throw InputError(name + ": safetensors header is not a JSON object");
  std::map<std::string, TensorView> tensors;
  const size_t data_size = file_size - data_offset;
  for (const auto& [key, entry] : j.items()) {
    if (key == "__metadata__") {
      if (metadata && entry.is_object()) {
        for (const auto& [k, v] : entry.items()) {
          if (v.is_string()) (*metadata)[k] = v.get<std::string>();
        }
      }
      continue;
    }
    const std::string where = name + ": tensor " + key;
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets") ||
        !entry["dtype"].is_string() || !entry["shape"].is_array() || !entry["data_offsets"].is_array() ||
        entry["data_offsets"].size() != 2) {
      throw InputError(where + ": header entry needs dtype, shape and two data_offsets");
    }
    TensorView view;
    view.name = key;
    view.dtype = parse_dtype(entry["dtype"].get<std::string>(), where);
    uint64_t count = 1;
    for (const auto& d : entry["shape"]) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > (1ull << 40)) throw InputError(where + ": bad shape");
      const uint64_t dim = d.get<uint64_t>();
      if (dim != 0 && count > (1ull << 48) / dim) throw InputError(where + ": shape too large");
      count *= dim;
      view.shape.push_back(static_cast<int64_t>(dim));
    }
    const auto& offsets = entry["data_offsets"];
    if (!offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned()) throw InputError(where + ": bad data_offsets");
    const uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
    if (begin > end || end > data_size) {
      throw InputError(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                       ") lie outside the " + std::to_string(data_size) + " data bytes");
    }
    if (end - begin != count * dtype_size(view.dtype)) {
      throw InputError(where + ": " + std::to_string(end - begin) + " data bytes do not match its shape and dtype");
    }
    view.bytes = static_cast<size_t>(end - begin);
    view.data = base ? base + data_offset + begin : nullptr;
    tensors.emplace(key, std::move(view));
  }
  return tensors;
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError(path.string() + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw InputError(path.string() + ": cannot stat");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    throw InputError(path.string() + ": too short to be a safetensors file");
  }
  map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw InputError(path.string() + ": cannot map the file");
  }
  const auto* base = static_cast<const uint8_t*>(map_);
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = header_size << 8 | base[i];
  if (header_size > kMaxHeaderBytes || header_size > size_ - 8) {
    ::munmap(map_, size_);
    map_ = nullptr;
    throw InputError(path.string() + ": header length " + std::to_string(header_size) + " does not fit the file");
  }
  try {
    tensors_ = parse_safetensors_header(std::string(reinterpret_cast<const char*>(base + 8), header_size),
                                        8 + header_size, size_, base, path.string(), &metadata_);
  } catch (...) {
    ::munmap(map_, size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, size_);
}

Checkpoint::Checkpoint(const std::filesystem::path& dir) : dir_(dir) {
  std::vector<std::filesystem::path> files;
  const auto index_file = dir / "model.safetensors.index.json";
  std::error_code ec;
  if (std::filesystem::exists(index_file, ec)) {
    const auto bytes = read_file_bytes(index_file);
    std::set<std::string> names;
    const auto j = parse_json(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                              index_file.string());
    try {
      for (const auto& [tensor, file] : j.at("weight_map").items()) names.insert(file.get<std::string>());
    } catch (const nlohmann::json::exception&) {
      throw InputError(index_file.string() + ": expected a weight_map of tensor -> file");
    }
    for (const std::string& n : names) {
      if (n.find('/') != std::string::npos || n.find("..") != std::string::npos) {
        throw InputError(index_file.string() + ": shard name '" + n + "' leaves the folder");
      }
      files.push_back(dir / n);
    }
  } else {
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      if (e.path().extension() == ".safetensors") files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
  }
  if (files.empty()) throw InputError(dir.string() + ": no *.safetensors files");
  for (const auto& f : files) {
    files_.push_back(std::make_unique<SafetensorsFile>(f));
    for (const auto& [name, view] : files_.back()->tensors()) {
      if (!index_.emplace(name, &view).second) throw InputError(f.string() + ": tensor " + name + " appears in two shards");
    }
  }
}

const TensorView* Checkpoint::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

const TensorView& Checkpoint::at(const std::string& name) const {
  const TensorView* v = find(name);
  if (!v) throw InputError(dir_.string() + ": checkpoint has no tensor " + name);
  return *v;
}

size_t Checkpoint::total_bytes() const {
  size_t n = 0;
  for (const auto& [name, view] : index_) n += view->bytes;
  return n;
}

}  // namespace drivevqa
