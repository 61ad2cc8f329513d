// Internal to the GGUF checks (engine/gguf_check*.cpp): typed reads of keys and tensor infos that
// never trip ggml's own type asserts, and that throw ModelError "<file>: <problem>" instead.
#pragma once

#include <gguf.h>

#include <array>
#include <cstdint>
#include <map>
#include <set>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "qwen25vl/tensor_table.h"

namespace drivevqa::gguf_check {

using Shape = std::array<int64_t, 4>;  // ggml order; unused dimensions are 1

std::string shape_text(const Shape& ne);
// A key's or token's text on one line: control and non-ASCII bytes as \xNN, at most 40 bytes.
std::string printable(std::string_view s);

struct TensorInfo {
  std::string name;
  ggml_type type;
  Shape ne;
  size_t offset;  // from the start of the data section
  size_t bytes;
};

// How a tensor is used, which decides the types the engine can compute with.
enum class TensorUse {
  kMatrix,  // multiplied or looked up: float or quantized types
  kVector,  // added or multiplied element-wise: F32 only
  kConv,    // convolution kernel (im2col): F32 or F16
};

class GgufReader {
 public:
  GgufReader(const gguf_context* gguf, std::string file);

  const std::string& file() const { return file_; }
  [[noreturn]] void fail(const std::string& problem) const;

  bool has(const std::string& key) const;
  // Present keys must have the type given; absent ones give nullopt.
  std::optional<std::string> string(const std::string& key) const;
  std::optional<uint32_t> u32(const std::string& key) const;
  std::optional<float> f32(const std::string& key) const;
  std::optional<bool> boolean(const std::string& key) const;
  void expect_type(const std::string& key, gguf_type type) const;
  uint32_t required_u32(const std::string& key) const;
  // Required, UINT32, at least 1 and at most `max`.
  uint32_t positive_u32(const std::string& key, uint32_t max = 0x7fffffffu) const;
  // Optional, FLOAT32, finite and not negative.
  std::optional<float> non_negative_f32(const std::string& key) const;
  // A value per layer as llama.cpp reads it: a UINT32, or an INT32/UINT32 array of n_layers that
  // must hold one value (qwen2vl sizes every layer's tensors from layer 0's).
  std::optional<uint32_t> per_layer_u32(const std::string& key, uint32_t n_layers) const;
  // An array of `element` items (any length); nullopt when absent.
  std::optional<size_t> array_size(const std::string& key, gguf_type element) const;
  // Its INT32 or UINT32 items as int64.
  std::vector<int64_t> int_array(const std::string& key) const;
  std::vector<float> f32_array(const std::string& key) const;
  int64_t key_id(const std::string& key) const { return gguf_find_key(gguf_, key.c_str()); }
  const gguf_context* gguf() const { return gguf_; }

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* tensor(const std::string& name) const;
  // Present, with shape `ne` (unused dimensions 1) and a type fit for `use`; `why` says where the
  // shape comes from.
  const TensorInfo& expect_tensor(const std::string& name, const Shape& ne, TensorUse use, const std::string& why) const;
  // The same when present; nullptr otherwise.
  const TensorInfo* optional_tensor(const std::string& name, const Shape& ne, TensorUse use, const std::string& why) const;
  void expect_usable_type(const TensorInfo& t, TensorUse use) const;
  // Every tensor: no zero dimension, a type ggml knows.
  void expect_sane_tensors() const;

 private:
  std::string type_of(int64_t id) const;
  const gguf_context* gguf_;
  std::string file_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> by_name_;
};

// The sizes a tower's shape rules (qwen25vl/tensor_table.h) take in one file, each with where it
// comes from, e.g. "embedding_length 128", for messages.
struct TableDims {
  DimSizes size{};
  std::array<std::string, static_cast<size_t>(Dim::kCount)> why;
  void set(Dim d, int64_t value, std::string where_from);
};

// Checks the file's tensors of one tower against the table: the required ones present, every
// present one of the table's shape and a type fit for its use, the refused ones absent; for the
// text attention, the separate or the fused q|k|v form, as llama.cpp loads either. Returns the
// names it accepted (a loader that refuses any other tensor compares the file's names with them).
std::set<std::string> check_tower_tensors(const GgufReader& r, Tower tower, const TableDims& dims, int64_t blocks);
// The size `d` has in the file: from the first present tower-wide tensor whose rule uses it;
// nullopt when there is none.
std::optional<int64_t> size_in_file(const GgufReader& r, Tower tower, Dim d);

}  // namespace drivevqa::gguf_check
