#include "lora/lora_merge.h"

#include <fcntl.h>
#include <gguf.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <thread>

#include "qwen25vl/gguf_stream_writer.h"
#include "util/error.h"

namespace drivevqa {
namespace {

using GgufPtr = std::unique_ptr<gguf_context, decltype(&gguf_free)>;
using GgmlPtr = std::unique_ptr<ggml_context, decltype(&ggml_free)>;

// A GGUF file's metadata (tensor infos, no data) and its bytes mapped read-only.
class MappedGguf {
 public:
  explicit MappedGguf(const std::filesystem::path& path) : gguf_(nullptr, &gguf_free), meta_(nullptr, &ggml_free) {
    ggml_context* meta = nullptr;
    gguf_init_params params{true, &meta};
    gguf_.reset(gguf_init_from_file(path.c_str(), params));
    meta_.reset(meta);
    if (!gguf_) throw ModelError(path.string() + ": GGUF file is truncated or corrupt");
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0) {
      const int err = errno;
      if (fd >= 0) ::close(fd);
      throw ModelError(path.string() + ": cannot be read (" + std::strerror(err) + ")");
    }
    size_ = static_cast<size_t>(st.st_size);
    // Every tensor's bytes inside the file (checked before mapping: reading past the end of a
    // mapped file is SIGBUS, and a throw after mapping would leak it).
    for (int64_t i = 0; i < gguf_get_n_tensors(gguf_.get()); ++i) {
      const size_t end = gguf_get_data_offset(gguf_.get()) + gguf_get_tensor_offset(gguf_.get(), i) + gguf_get_tensor_size(gguf_.get(), i);
      if (end > size_) {
        ::close(fd);
        throw ModelError(path.string() + ": tensor " + gguf_get_tensor_name(gguf_.get(), i) + " ends past the end of the file (truncated)");
      }
      tensors_.push_back(ggml_get_tensor(meta_.get(), gguf_get_tensor_name(gguf_.get(), i)));
    }
    void* map = size_ > 0 ? ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    ::close(fd);
    if (map == MAP_FAILED) throw ModelError(path.string() + ": cannot map the file");
    map_ = static_cast<const uint8_t*>(map);
  }
  ~MappedGguf() {
    if (map_) ::munmap(const_cast<uint8_t*>(map_), size_);
  }
  MappedGguf(const MappedGguf&) = delete;
  MappedGguf& operator=(const MappedGguf&) = delete;

  const gguf_context* gguf() const { return gguf_.get(); }
  int64_t tensor_count() const { return static_cast<int64_t>(tensors_.size()); }
  const ggml_tensor& tensor(int64_t i) const { return *tensors_[static_cast<size_t>(i)]; }
  const uint8_t* data(int64_t i) const {
    return map_ + gguf_get_data_offset(gguf_.get()) + gguf_get_tensor_offset(gguf_.get(), i);
  }

 private:
  GgufPtr gguf_;
  GgmlPtr meta_;
  std::vector<const ggml_tensor*> tensors_;  // in the file's order
  const uint8_t* map_ = nullptr;
  size_t size_ = 0;
};

// The largest magnitude a type stores: f16's range bounds f16 and the f16 block scales of the
// quantized types too.
float largest_value(ggml_type type) {
  if (type == GGML_TYPE_F32) return FLT_MAX;
  if (type == GGML_TYPE_BF16) return 3.38953139e38f;
  return 65504.0f;
}

// A targeted tensor's type must go back to itself after the merge.
void require_requantizable(const ggml_tensor& t, const std::filesystem::path& base) {
  const ggml_type type = t.type;
  const bool float_type = is_float_weight_type(type);
  const bool quantized = ggml_is_quantized(type) && ggml_get_type_traits(type)->to_float != nullptr;
  if (!float_type && !quantized) {
    throw ModelError(base.string() + ": tensor " + t.name + " is " + ggml_type_name(type) +
                     ", which a LoRA pair cannot be merged into; use --lora_mode runtime");
  }
  if (ggml_quantize_requires_imatrix(type)) {
    throw ModelError(base.string() + ": tensor " + t.name + " is " + ggml_type_name(type) +
                     ", which cannot be quantized again without an importance matrix; use --lora_mode runtime");
  }
}

// The pair merged into a copy of the tensor, in its own type.
std::span<const uint8_t> merged_bytes(const ggml_tensor& t, const uint8_t* data, const LoraModule& m,
                                      const LoraTarget& target, const std::string& where, std::vector<uint8_t>& out) {
  std::vector<float> w(static_cast<size_t>(ggml_nelements(&t)));
  if (t.type == GGML_TYPE_F32) {
    std::memcpy(w.data(), data, w.size() * sizeof(float));
  } else {
    ggml_get_type_traits(t.type)->to_float(data, w.data(), ggml_nelements(&t));
  }
  add_lora_delta(m, target, w);
  const float limit = largest_value(t.type);
  for (size_t k = 0; k < w.size(); ++k) {
    if (!(std::fabs(w[k]) <= limit)) {
      throw InputError(where + ": " + m.module + " merged into " + t.name + " gives " + std::to_string(w[k]) +
                       " at element " + std::to_string(k) + ", which " + ggml_type_name(t.type) + " cannot hold");
    }
  }
  return convert_f32(w, t.type, t.ne[0], out);
}

// A GGUF file's tensor infos, without their data.
struct GgufMetadata {
  GgufPtr gguf{nullptr, &gguf_free};
  GgmlPtr tensors{nullptr, &ggml_free};
};

GgufMetadata read_gguf_metadata(const std::filesystem::path& path) {
  ggml_context* meta = nullptr;
  gguf_init_params params{true, &meta};
  GgufMetadata m;
  m.gguf.reset(gguf_init_from_file(path.c_str(), params));
  m.tensors.reset(meta);
  if (!m.gguf) throw ModelError(path.string() + ": GGUF file is truncated or corrupt");
  return m;
}

}  // namespace

bool is_float_weight_type(ggml_type type) {
  return type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16;
}

bool has_float_weights(const std::filesystem::path& gguf) {
  const GgufMetadata m = read_gguf_metadata(gguf);
  ggml_context* meta = m.tensors.get();
  for (ggml_tensor* t = ggml_get_first_tensor(meta); t; t = ggml_get_next_tensor(meta, t)) {
    if (ggml_n_dims(t) >= 2 && !is_float_weight_type(t->type)) return false;
  }
  return true;
}

TensorShapes gguf_tensor_shapes(const std::filesystem::path& gguf) {
  const GgufMetadata m = read_gguf_metadata(gguf);
  ggml_context* meta = m.tensors.get();
  TensorShapes shapes;
  for (ggml_tensor* t = ggml_get_first_tensor(meta); t; t = ggml_get_next_tensor(meta, t)) shapes[t->name] = {t->ne[0], t->ne[1]};
  return shapes;
}

void check_lora_fits(const LoraModule& m, const LoraTarget& t, const TensorShapes& shapes, const std::string& where) {
  const auto it = shapes.find(t.gguf);
  if (it == shapes.end()) throw InputError(where + ": " + m.module + " targets " + t.gguf + ", which the base model lacks");
  const int64_t in = m.a->shape[1], out = m.b->shape[0] / t.parts;
  if (it->second.first != in || it->second.second != out) {
    throw InputError(where + ": " + m.module + " is " + std::to_string(in) + " -> " + std::to_string(out) +
                     " but the base model's " + t.gguf + " is " + std::to_string(it->second.first) + " -> " +
                     std::to_string(it->second.second) + " (an adapter for another model?)");
  }
}

void add_lora_delta(const LoraModule& m, const LoraTarget& t, std::span<float> w) {
  const std::vector<float> a = m.a->to_f32(), b = m.b->to_f32();
  const int64_t r = m.rank, in = m.a->shape[1];
  const int64_t out = m.b->shape[0] / t.parts;
  const int64_t first = t.part * out;
  if (static_cast<int64_t>(w.size()) != out * in) throw std::logic_error("add_lora_delta: " + m.module + ": weight size mismatch");
  // One row at a time: acc[i] = sum over k of B[o,k] * A[k,i], in rank order (vectorisable over i).
  const auto rows = [&](int64_t begin, int64_t end, std::vector<double>& acc) {
    for (int64_t o = begin; o < end; ++o) {
      std::fill(acc.begin(), acc.end(), 0.0);
      const float* brow = &b[static_cast<size_t>((first + o) * r)];
      for (int64_t k = 0; k < r; ++k) {
        const double bk = brow[k];
        const float* arow = &a[static_cast<size_t>(k * in)];
        for (int64_t i = 0; i < in; ++i) acc[static_cast<size_t>(i)] += bk * arow[i];
      }
      float* wrow = &w[static_cast<size_t>(o * in)];
      for (int64_t i = 0; i < in; ++i) wrow[i] += static_cast<float>(m.scale * acc[static_cast<size_t>(i)]);
    }
  };
  const int64_t work = out * in * r;
  const int64_t threads = work < (int64_t{1} << 22) ? 1 : std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, out);
  std::vector<std::vector<double>> accs(static_cast<size_t>(threads), std::vector<double>(static_cast<size_t>(in)));
  std::vector<std::thread> pool;
  for (int64_t k = 1; k < threads; ++k) {
    pool.emplace_back(rows, out * k / threads, out * (k + 1) / threads, std::ref(accs[static_cast<size_t>(k)]));
  }
  rows(0, out / threads, accs[0]);
  for (std::thread& th : pool) th.join();
}

void write_merged_gguf(const std::vector<const LoraModule*>& modules, const std::filesystem::path& base,
                       const std::filesystem::path& out, const std::string& where) {
  const MappedGguf src(base);
  TensorShapes shapes;
  for (int64_t i = 0; i < src.tensor_count(); ++i) shapes[src.tensor(i).name] = {src.tensor(i).ne[0], src.tensor(i).ne[1]};
  std::map<std::string, std::pair<const LoraModule*, LoraTarget>> changes;  // by tensor name
  for (const LoraModule* m : modules) {
    for (const LoraTarget& t : lora_targets(m->module)) {
      check_lora_fits(*m, t, shapes, where);
      if (!changes.emplace(t.gguf, std::make_pair(m, t)).second) throw InputError(where + ": two LoRA pairs change " + t.gguf);
    }
  }
  GgufStreamWriter w;
  gguf_set_kv(w.kv(), src.gguf());
  for (int64_t i = 0; i < src.tensor_count(); ++i) {
    const ggml_tensor& t = src.tensor(i);
    if (changes.count(t.name)) require_requantizable(t, base);
    w.declare_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + ggml_n_dims(&t)));
  }
  std::vector<uint8_t> bytes;
  w.write(out, [&](size_t i, const ggml_tensor&) {
    const ggml_tensor& t = src.tensor(static_cast<int64_t>(i));
    const uint8_t* data = src.data(static_cast<int64_t>(i));
    const auto it = changes.find(t.name);
    if (it == changes.end()) return std::span<const uint8_t>(data, ggml_nbytes(&t));  // unchanged: straight from the mapping
    return merged_bytes(t, data, *it->second.first, it->second.second, where, bytes);
  });
}

}  // namespace drivevqa
