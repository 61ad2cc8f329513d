#include "convert/content_key.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/text.h"

namespace drivevqa {
namespace {

// Bump when what the key covers changes, so old entries are not mistaken for new ones.
constexpr char kKeyVersion[] = "drivevqa-content-key-1";
constexpr size_t kBlock = 1 << 20;
constexpr size_t kSampledBlocks = 8;
constexpr size_t kWholeOther = 64u << 20;
constexpr uint64_t kMaxHeader = 100ull << 20;  // as the safetensors reader

// A 64-bit hash over 8-byte words in four independent lanes (several GB/s, where byte-wise FNV
// runs near 1): stable across runs and machines; for cache keys, not security.
class Hasher {
 public:
  void bytes(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
      for (int l = 0; l < 4; ++l) {
        uint64_t w;
        std::memcpy(&w, p + i + 8 * l, 8);
        lane_[l] = round(lane_[l], w);
      }
    }
    for (; i < n; ++i) tail_ = (tail_ ^ p[i]) * 1099511628211ull;
    total_ += n;
  }
  // A field with its length first, so that ("ab","c") and ("a","bc") differ.
  void field(const std::string& s) {
    const uint64_t n = s.size();
    bytes(&n, 8);
    bytes(s.data(), s.size());
  }
  uint64_t digest() const {
    uint64_t h = total_ * 0x9E3779B97F4A7C15ull ^ tail_;
    for (uint64_t l : lane_) h = round(h, l);
    h ^= h >> 33;
    h *= 0xC2B2AE3D27D4EB4Full;
    return h ^ (h >> 29);
  }

 private:
  static uint64_t round(uint64_t acc, uint64_t w) {
    acc += w * 0xC2B2AE3D27D4EB4Full;
    acc = (acc << 31) | (acc >> 33);
    return acc * 0x9E3779B97F4A7C15ull;
  }
  uint64_t lane_[4] = {1, 2, 3, 4};
  uint64_t tail_ = kFnvOffset;
  uint64_t total_ = 0;
};

bool is_weight_file(const std::filesystem::path& p) {
  static const char* kExt[] = {".safetensors", ".gguf", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx"};
  const std::string ext = p.extension().string();
  return std::any_of(std::begin(kExt), std::end(kExt), [&](const char* e) { return ext == e; });
}

// Reads [offset, offset + n) into the hash; false on a read error.
bool hash_range(int fd, uint64_t offset, size_t n, Hasher& h, std::vector<uint8_t>& buf) {
  buf.resize(std::min(n, kBlock));
  while (n > 0) {
    const size_t want = std::min(n, buf.size());
    const ssize_t got = ::pread(fd, buf.data(), want, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    h.bytes(buf.data(), static_cast<size_t>(got));
    offset += static_cast<uint64_t>(got);
    n -= static_cast<size_t>(got);
  }
  return true;
}

// The safetensors header: 8-byte length, then the JSON naming every tensor with its place.
bool hash_safetensors_header(int fd, uint64_t size, Hasher& h, std::vector<uint8_t>& buf) {
  uint8_t len_bytes[8];
  if (size < 8 || ::pread(fd, len_bytes, 8, 0) != 8) return false;
  uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = len << 8 | len_bytes[i];
  if (len > kMaxHeader || len > size - 8) return false;  // not a safetensors header: the blocks still count
  h.field("header");
  return hash_range(fd, 8, static_cast<size_t>(len), h, buf);
}

void hash_file(const std::filesystem::path& path, const std::string& name, Hasher& h, std::vector<uint8_t>& buf) {
  h.field(name);
  // O_NONBLOCK: a FIFO among the files must not hang the key; only regular files are read.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    h.field(fd < 0 ? std::string("unreadable: ") + std::strerror(errno) : "not a regular file");
    if (fd >= 0) ::close(fd);
    return;
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  h.bytes(&size, 8);
  bool ok = true;
  if (path.extension() == ".safetensors") hash_safetensors_header(fd, size, h, buf);
  const bool sampled = size > (is_weight_file(path) ? kSampledBlocks * kBlock : kWholeOther);
  if (!sampled) {
    ok = hash_range(fd, 0, static_cast<size_t>(size), h, buf);
  } else {
    // First and last block and evenly spaced ones between (block-aligned starts, last ends the file).
    for (size_t i = 0; i < kSampledBlocks && ok; ++i) {
      const uint64_t at = i + 1 == kSampledBlocks ? size - kBlock : (size - kBlock) / (kSampledBlocks - 1) * i;
      ok = hash_range(fd, at, kBlock, h, buf);
    }
  }
  if (!ok) h.field("read error");
  ::close(fd);
}

}  // namespace

std::string content_key(const std::vector<std::filesystem::path>& paths, const std::string& settings) {
  Hasher h;
  h.field(kKeyVersion);
  h.field(settings);
  std::vector<uint8_t> buf;
  for (const auto& p : paths) {
    h.field("path");
    std::error_code ec;
    if (!std::filesystem::is_directory(p, ec)) {
      hash_file(p, "", h, buf);  // a file given directly: its content only, wherever it lies
      continue;
    }
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(p, ec)) {
      if (!e.is_directory(ec)) names.push_back(e.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    for (const std::string& n : names) hash_file(p / n, n, h, buf);
  }
  return hex64(h.digest());
}

std::string content_label(const std::filesystem::path& path) {
  std::error_code ec;
  std::filesystem::path real = std::filesystem::canonical(path, ec);
  if (ec) real = std::filesystem::absolute(path, ec).lexically_normal();
  if (!real.has_filename()) real = real.parent_path();
  const std::string label = real.filename().string();
  return label.empty() ? "model" : label;
}

}  // namespace drivevqa
