// Hugging Face Qwen2.5-VL folder -> model.gguf + mmproj.gguf, exactly as llama.cpp's Python
// converters lay them out (shared/docs/qwen25vl-gguf.md), without Python.
//
// What must hold: tensors are read from the mapped checkpoint one at a time (memory stays at one
// tensor beyond the mapped files); both files appear only when complete; a checkpoint whose
// tensors do not match its config is refused with a message naming the tensor.
#pragma once

#include <filesystem>

#include <ggml.h>

namespace drivevqa {

struct ConvertReport {
  size_t tensors = 0;
  size_t bytes_read = 0;
  double seconds = 0;
};

// outtype: F32, F16, BF16 or Q8_0 for 2-D weights (norms and biases stay F32).
ConvertReport convert_hf_model(const std::filesystem::path& src, const std::filesystem::path& out_dir, ggml_type outtype);

}  // namespace drivevqa
