#include "engine/gguf_check_reader.h"

#include <ggml.h>

#include <cmath>

#include "util/error.h"

namespace drivevqa::gguf_check {

std::string shape_text(const Shape& ne) {
  int dims = 4;
  while (dims > 1 && ne[static_cast<size_t>(dims - 1)] == 1) --dims;
  std::string s = "[";
  for (int i = 0; i < dims; ++i) s += (i ? ", " : "") + std::to_string(ne[static_cast<size_t>(i)]);
  return s + "]";
}

std::string printable(std::string_view s) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s.substr(0, 40)) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += std::string("\\x") + hex[c >> 4] + hex[c & 15];
    }
  }
  return s.size() > 40 ? out + "..." : out;
}

GgufReader::GgufReader(const gguf_context* gguf, std::string file) : gguf_(gguf), file_(std::move(file)) {
  const int64_t n = gguf_get_n_tensors(gguf_);
  tensors_.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    TensorInfo t;
    t.name = gguf_get_tensor_name(gguf_, i);
    t.type = gguf_get_tensor_type(gguf_, i);
    const int64_t* ne = gguf_get_tensor_ne(gguf_, i);
    for (size_t d = 0; d < 4; ++d) t.ne[d] = ne[d];
    t.offset = gguf_get_tensor_offset(gguf_, i);
    t.bytes = gguf_get_tensor_size(gguf_, i);
    by_name_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }
}

void GgufReader::fail(const std::string& problem) const { throw ModelError(file_ + ": " + problem); }

std::string GgufReader::type_of(int64_t id) const {
  const auto name = [](gguf_type type) {
    const char* known = gguf_type_name(type);
    return known ? std::string(known) : "type " + std::to_string(static_cast<int>(type));
  };
  const gguf_type type = gguf_get_kv_type(gguf_, id);
  return type == GGUF_TYPE_ARRAY ? "array of " + name(gguf_get_arr_type(gguf_, id)) : name(type);
}

bool GgufReader::has(const std::string& key) const { return key_id(key) >= 0; }

void GgufReader::expect_type(const std::string& key, gguf_type type) const {
  const int64_t id = key_id(key);
  if (id >= 0 && gguf_get_kv_type(gguf_, id) != type) {
    fail(key + " is " + type_of(id) + ", expected " + gguf_type_name(type));
  }
}

std::optional<std::string> GgufReader::string(const std::string& key) const {
  expect_type(key, GGUF_TYPE_STRING);
  const int64_t id = key_id(key);
  if (id < 0) return std::nullopt;
  return std::string(gguf_get_val_str(gguf_, id));
}

std::optional<uint32_t> GgufReader::u32(const std::string& key) const {
  expect_type(key, GGUF_TYPE_UINT32);
  const int64_t id = key_id(key);
  if (id < 0) return std::nullopt;
  return gguf_get_val_u32(gguf_, id);
}

std::optional<float> GgufReader::f32(const std::string& key) const {
  expect_type(key, GGUF_TYPE_FLOAT32);
  const int64_t id = key_id(key);
  if (id < 0) return std::nullopt;
  return gguf_get_val_f32(gguf_, id);
}

std::optional<bool> GgufReader::boolean(const std::string& key) const {
  expect_type(key, GGUF_TYPE_BOOL);
  const int64_t id = key_id(key);
  if (id < 0) return std::nullopt;
  return gguf_get_val_bool(gguf_, id);
}

uint32_t GgufReader::required_u32(const std::string& key) const {
  const auto v = u32(key);
  if (!v) fail(key + " is missing (a UINT32)");
  return *v;
}

uint32_t GgufReader::positive_u32(const std::string& key, uint32_t max) const {
  const uint32_t v = required_u32(key);
  if (v == 0) fail(key + " is 0, expected at least 1");
  if (v > max) fail(key + " is " + std::to_string(v) + ", expected at most " + std::to_string(max));
  return v;
}

std::optional<float> GgufReader::non_negative_f32(const std::string& key) const {
  const auto v = f32(key);
  if (v && !(std::isfinite(*v) && *v >= 0)) fail(key + " is " + std::to_string(*v) + ", expected a finite value >= 0");
  return v;
}

std::optional<size_t> GgufReader::array_size(const std::string& key, gguf_type element) const {
  const int64_t id = key_id(key);
  if (id < 0) return std::nullopt;
  if (gguf_get_kv_type(gguf_, id) != GGUF_TYPE_ARRAY || gguf_get_arr_type(gguf_, id) != element) {
    fail(key + " is " + type_of(id) + ", expected array of " + gguf_type_name(element));
  }
  return gguf_get_arr_n(gguf_, id);
}

std::vector<int64_t> GgufReader::int_array(const std::string& key) const {
  const int64_t id = key_id(key);
  if (id < 0) return {};
  const bool is_array = gguf_get_kv_type(gguf_, id) == GGUF_TYPE_ARRAY;
  const gguf_type element = is_array ? gguf_get_arr_type(gguf_, id) : GGUF_TYPE_COUNT;
  if (element != GGUF_TYPE_INT32 && element != GGUF_TYPE_UINT32) {
    fail(key + " is " + type_of(id) + ", expected array of int32 or uint32");
  }
  const size_t n = gguf_get_arr_n(gguf_, id);
  const void* data = gguf_get_arr_data(gguf_, id);
  std::vector<int64_t> values(n);
  for (size_t i = 0; i < n; ++i) {
    values[i] = element == GGUF_TYPE_INT32 ? static_cast<const int32_t*>(data)[i] : static_cast<const uint32_t*>(data)[i];
  }
  return values;
}

std::vector<float> GgufReader::f32_array(const std::string& key) const {
  const auto n = array_size(key, GGUF_TYPE_FLOAT32);
  if (!n) return {};
  const auto* data = static_cast<const float*>(gguf_get_arr_data(gguf_, key_id(key)));
  return std::vector<float>(data, data + *n);
}

std::optional<uint32_t> GgufReader::per_layer_u32(const std::string& key, uint32_t n_layers) const {
  const int64_t id = key_id(key);
  if (id < 0) return std::nullopt;
  if (gguf_get_kv_type(gguf_, id) != GGUF_TYPE_ARRAY) return u32(key);
  const std::vector<int64_t> values = int_array(key);
  if (values.size() != n_layers) {
    fail(key + " has " + std::to_string(values.size()) + " values, expected one per layer (" + std::to_string(n_layers) + ")");
  }
  for (int64_t v : values) {
    if (v != values[0]) fail(key + " differs between layers; qwen2vl sizes every layer from layer 0");
  }
  if (values[0] < 0) fail(key + " is " + std::to_string(values[0]) + ", expected a count");
  return static_cast<uint32_t>(values[0]);
}

const TensorInfo* GgufReader::tensor(const std::string& name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

void GgufReader::expect_usable_type(const TensorInfo& t, TensorUse use) const {
  const bool ok = use == TensorUse::kVector ? t.type == GGML_TYPE_F32
                  : use == TensorUse::kConv ? t.type == GGML_TYPE_F32 || t.type == GGML_TYPE_F16
                  : t.type == GGML_TYPE_F32 || t.type == GGML_TYPE_F16 || t.type == GGML_TYPE_BF16 || ggml_is_quantized(t.type);
  if (ok) return;
  const char* expected = use == TensorUse::kVector ? "f32" : use == TensorUse::kConv ? "f32 or f16" : "a float or quantized type";
  fail("tensor " + t.name + " has type " + ggml_type_name(t.type) + ", expected " + expected);
}

const TensorInfo* GgufReader::optional_tensor(const std::string& name, const Shape& ne, TensorUse use,
                                              const std::string& why) const {
  const TensorInfo* t = tensor(name);
  if (!t) return nullptr;
  if (t->ne != ne) fail("tensor " + name + " has shape " + shape_text(t->ne) + ", expected " + shape_text(ne) + " (" + why + ")");
  expect_usable_type(*t, use);
  return t;
}

const TensorInfo& GgufReader::expect_tensor(const std::string& name, const Shape& ne, TensorUse use,
                                            const std::string& why) const {
  const TensorInfo* t = optional_tensor(name, ne, use, why);
  if (!t) fail("tensor " + name + " is missing (expected " + shape_text(ne) + ", " + why + ")");
  return *t;
}

void GgufReader::expect_sane_tensors() const {
  for (const TensorInfo& t : tensors_) {
    if (t.type < 0 || t.type >= GGML_TYPE_COUNT || ggml_blck_size(t.type) <= 0 || ggml_type_size(t.type) == 0) {
      fail("tensor " + t.name + " has unknown type " + std::to_string(static_cast<int>(t.type)));
    }
    for (int64_t d : t.ne) {
      if (d <= 0) fail("tensor " + t.name + " has shape " + shape_text(t.ne) + ": every dimension must be at least 1");
    }
  }
}

}  // namespace drivevqa::gguf_check
