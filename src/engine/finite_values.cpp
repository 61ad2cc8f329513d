#include "engine/finite_values.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "util/error.h"

namespace drivevqa {
namespace {

// Values are scanned in blocks: the inner loop is a max over masked bits with no branch (the
// compiler vectorises it); only a block holding a NaN/Inf is searched again for its first one.
constexpr size_t kBlock = 2048;
constexpr float kF16Max = 65504.0f;

// Bits of |x| order like |x|, and every NaN/Inf pattern is at or above the exponent mask.
template <typename Bits, Bits kAbsMask, Bits kExpMask, typename ToFloat>
ValueScan scan_bits(const void* data, size_t n, ToFloat to_float) {
  // Loads through memcpy: the same bytes without aliasing a float as an integer.
  const auto* bytes = static_cast<const uint8_t*>(data);
  const auto abs_at = [bytes](size_t i) {
    Bits b;
    std::memcpy(&b, bytes + i * sizeof(Bits), sizeof(Bits));
    return static_cast<Bits>(b & kAbsMask);
  };
  ValueScan s;
  Bits max_bits = 0;
  for (size_t at = 0; at < n; at += kBlock) {
    const size_t len = std::min(kBlock, n - at);
    Bits m = 0;
    for (size_t i = at; i < at + len; ++i) {
      const Bits b = abs_at(i);
      m = b > m ? b : m;
    }
    if (m >= kExpMask) {
      size_t i = at;
      for (; abs_at(i) < kExpMask; ++i) max_bits = std::max(max_bits, abs_at(i));
      s.first_non_finite = i;
      break;
    }
    max_bits = std::max(max_bits, m);
  }
  s.max_abs = to_float(max_bits);
  return s;
}

float f16_bits_to_f32(uint16_t h) { return ggml_fp16_to_fp32(h); }
float bf16_bits_to_f32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

std::string value_words(float x) {
  if (std::isnan(x)) return "NaN";
  if (std::isinf(x)) return x > 0 ? "+Inf" : "-Inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", static_cast<double>(x));
  return buf;
}

struct SampledBad {
  uint64_t index = 0;
  float value = 0;
};

// Up to four 64 KB blocks (first, last, two between) of the `bytes` at `offset` of `fd`.
std::optional<SampledBad> sample_non_finite(int fd, uint64_t offset, uint64_t bytes, ggml_type type) {
  if (type != GGML_TYPE_F32 && type != GGML_TYPE_F16 && type != GGML_TYPE_BF16) return std::nullopt;
  const uint64_t width = type == GGML_TYPE_F32 ? 4 : 2;
  constexpr uint64_t kSample = 64 << 10, kBlocks = 4;
  std::vector<uint8_t> buf(static_cast<size_t>(std::min(bytes, kSample)));
  const uint64_t last = bytes > kSample ? bytes - kSample : 0;
  for (uint64_t b = 0; b < kBlocks; ++b) {
    // Element-aligned starts (tensor data is whole elements); the last block ends the data.
    const uint64_t from = b + 1 == kBlocks ? last / width * width : last / (kBlocks - 1) * b / width * width;
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), bytes - from)) / width * width;
    ssize_t got;
    do got = ::pread(fd, buf.data(), want, static_cast<off_t>(offset + from)); while (got < 0 && errno == EINTR);
    if (got != static_cast<ssize_t>(want)) return std::nullopt;
    const ValueScan s = scan_values(buf.data(), want / width, type);
    if (!s.finite()) return SampledBad{from / width + s.first_non_finite, value_at(buf.data(), s.first_non_finite, type)};
    if (bytes <= kSample) break;  // one block held it all
  }
  return std::nullopt;
}

}  // namespace

ValueScan scan_f32(const float* values, size_t n) {
  // Integer compares of the bits see NaN too, where float compares are always false.
  return scan_bits<uint32_t, 0x7fffffffu, 0x7f800000u>(values, n, [](uint32_t b) { return std::bit_cast<float>(b); });
}

ValueScan scan_f16(const uint16_t* values, size_t n) {
  return scan_bits<uint16_t, 0x7fff, 0x7c00>(values, n, f16_bits_to_f32);
}

ValueScan scan_bf16(const uint16_t* values, size_t n) {
  return scan_bits<uint16_t, 0x7fff, 0x7f80>(values, n, bf16_bits_to_f32);
}

ValueScan scan_values(const void* data, size_t n, ggml_type type) {
  if (!data || n == 0) return {};
  switch (type) {
    case GGML_TYPE_F32: return scan_f32(static_cast<const float*>(data), n);
    case GGML_TYPE_F16: return scan_f16(static_cast<const uint16_t*>(data), n);
    case GGML_TYPE_BF16: return scan_bf16(static_cast<const uint16_t*>(data), n);
    default: return {};
  }
}

float value_at(const void* data, size_t i, ggml_type type) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  uint16_t h = 0;
  switch (type) {
    case GGML_TYPE_F32: {
      float f;
      std::memcpy(&f, bytes + i * 4, 4);
      return f;
    }
    case GGML_TYPE_F16: std::memcpy(&h, bytes + i * 2, 2); return f16_bits_to_f32(h);
    case GGML_TYPE_BF16: std::memcpy(&h, bytes + i * 2, 2); return bf16_bits_to_f32(h);
    default: return 0;
  }
}

void refuse_non_finite(const std::string& what, size_t index, size_t count, float value) {
  throw InputError(what + ": element " + std::to_string(index) + " of " + std::to_string(count) + " is " +
                   value_words(value) + " (NaN or Inf weights make every answer garbage; the checkpoint is broken)");
}

void require_representable(float max_abs, ggml_type type, const std::string& what) {
  // Q8_0 keeps amax / 127 per block as fp16; F16 keeps the values themselves.
  const float limit = type == GGML_TYPE_F16 ? kF16Max : type == GGML_TYPE_Q8_0 ? kF16Max * 127.0f : INFINITY;
  if (!(max_abs > limit)) return;
  throw InputError(what + ": holds " + value_words(max_abs) + ", beyond what " + ggml_type_name(type) +
                   " can store (fp16 tops out at 65504); convert to bf16 instead (convert --outtype bf16, "
                   "run --dtype bf16, ask --outtype bf16), which keeps f32's range");
}

void check_weight_values(const float* values, size_t n, ggml_type type, const std::string& what) {
  const ValueScan s = scan_f32(values, n);
  if (!s.finite()) refuse_non_finite(what, s.first_non_finite, n, values[s.first_non_finite]);
  require_representable(s.max_abs, type, what);
}

void check_gguf_sampled_values(const gguf_context* gguf, const std::string& file) {
  // O_NONBLOCK: never wait on a FIFO; the engine's own open reports what is wrong with the file.
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return;
  const uint64_t data = gguf_get_data_offset(gguf);
  try {
    for (int64_t i = 0; i < gguf_get_n_tensors(gguf); ++i) {
      const auto bad = sample_non_finite(fd, data + gguf_get_tensor_offset(gguf, i), gguf_get_tensor_size(gguf, i),
                                         gguf_get_tensor_type(gguf, i));
      if (!bad) continue;
      const ggml_type type = gguf_get_tensor_type(gguf, i);
      const uint64_t n = gguf_get_tensor_size(gguf, i) / (type == GGML_TYPE_F32 ? 4 : 2);
      throw ModelError(file + ": tensor " + gguf_get_tensor_name(gguf, i) + ": element " + std::to_string(bad->index) +
                       " of " + std::to_string(n) + " is " + value_words(bad->value) +
                       " (NaN or Inf weights make every answer garbage; the model file is broken)");
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
}

}  // namespace drivevqa
