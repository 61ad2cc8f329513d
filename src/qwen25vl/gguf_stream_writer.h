// Writes a GGUF file one tensor at a time, so a model never has to be in memory as a whole.
//
// Usage: set keys on kv(), declare every tensor (name, type, shape in ggml order), then write():
// the producer is called once per tensor, in declaration order, and must return exactly
// ggml_nbytes of that tensor. The bytes need to stay valid only until the producer is called again
// or write() returns, so a producer can hand out a buffer it reuses for every tensor (a fresh buffer
// per tensor costs a page fault per 4 KiB on every tensor) or bytes straight from a mapped file.
// The file appears at `path` only when complete (temp + rename).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include <ggml.h>
#include <gguf.h>

namespace drivevqa {

class GgufStreamWriter {
 public:
  GgufStreamWriter();
  ~GgufStreamWriter();
  GgufStreamWriter(const GgufStreamWriter&) = delete;
  GgufStreamWriter& operator=(const GgufStreamWriter&) = delete;

  gguf_context* kv() { return gguf_; }
  void set_string_array(const char* key, const std::vector<std::string>& values);

  void declare_tensor(const std::string& name, ggml_type type, std::vector<int64_t> ne);
  size_t tensor_count() const { return tensors_.size(); }

  using Producer = std::function<std::span<const uint8_t>(size_t index, const ggml_tensor& tensor)>;
  // Throws OutputError naming the path on any write failure.
  void write(const std::filesystem::path& path, const Producer& produce) const;

 private:
  gguf_context* gguf_;
  ggml_context* meta_;
  std::vector<ggml_tensor*> tensors_;
};


// Converts f32 values into `type` with ggml's own rounding (F32, F16, BF16, Q8_0), into `out`
// (resized; its capacity is kept for the next tensor). Returns the bytes, which live in `out`.
std::span<const uint8_t> convert_f32(std::span<const float> values, ggml_type type, int64_t row_length,
                                     std::vector<uint8_t>& out);

}  // namespace drivevqa
