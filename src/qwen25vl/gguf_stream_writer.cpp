#include "qwen25vl/gguf_stream_writer.h"

#include <cstdio>
#include <cstring>
#include <memory>

#include <unistd.h>

#include "util/error.h"
#include "util/atomic_file.h"
#include "util/files.h"

namespace drivevqa {

GgufStreamWriter::GgufStreamWriter() : gguf_(gguf_init_empty()) {
  // Room for tensor headers only: the data never lives in this context.
  ggml_init_params params{/*mem_size=*/64 * 1024 * 1024, /*mem_buffer=*/nullptr, /*no_alloc=*/true};
  meta_ = ggml_init(params);
}

GgufStreamWriter::~GgufStreamWriter() {
  gguf_free(gguf_);
  ggml_free(meta_);
}

void GgufStreamWriter::set_string_array(const char* key, const std::vector<std::string>& values) {
  std::vector<const char*> raw;
  raw.reserve(values.size());
  for (const auto& v : values) raw.push_back(v.c_str());
  gguf_set_arr_str(gguf_, key, raw.data(), raw.size());
}

void GgufStreamWriter::declare_tensor(const std::string& name, ggml_type type, std::vector<int64_t> ne) {
  ggml_tensor* t = ggml_new_tensor(meta_, type, static_cast<int>(ne.size()), ne.data());
  ggml_set_name(t, name.c_str());
  gguf_add_tensor(gguf_, t);
  tensors_.push_back(t);
}

void GgufStreamWriter::write(const std::filesystem::path& path, const Producer& produce) const {
  AtomicFile file(path);
  std::vector<uint8_t> meta(gguf_get_meta_size(gguf_));
  gguf_get_meta_data(gguf_, meta.data());
  file.write(meta.data(), meta.size());
  const size_t alignment = gguf_get_alignment(gguf_);
  static const uint8_t zeros[64] = {};
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const std::span<const uint8_t> data = produce(i, *tensors_[i]);
    if (data.size() != ggml_nbytes(tensors_[i])) {
      throw Error(ExitCode::kFailure, std::string("internal: tensor ") + tensors_[i]->name + " has " +
                                          std::to_string(data.size()) + " bytes, expected " +
                                          std::to_string(ggml_nbytes(tensors_[i])));
    }
    file.write(data.data(), data.size());
    file.write(zeros, GGML_PAD(data.size(), alignment) - data.size());
  }
  file.commit();
}

std::span<const uint8_t> convert_f32(std::span<const float> values, ggml_type type, int64_t row_length,
                                     std::vector<uint8_t>& out) {
  if (type == GGML_TYPE_F32) {
    out.resize(values.size_bytes());
    std::memcpy(out.data(), values.data(), out.size());
    return out;
  }
  const int64_t rows = static_cast<int64_t>(values.size()) / row_length;
  out.resize(ggml_row_size(type, row_length) * rows);
  ggml_quantize_chunk(type, values.data(), out.data(), 0, rows, row_length, nullptr);
  return out;
}

}  // namespace drivevqa
