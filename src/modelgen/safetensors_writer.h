// Writes F32 safetensors files one tensor at a time (generated Hugging Face models and adapters).
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace drivevqa {

struct SafetensorsEntry {
  std::string name;
  std::vector<int64_t> shape;  // PyTorch order
};

// Entries are written in name order (as safetensors does); `produce` returns each tensor's f32
// values. The file appears at `path` only when complete.
void write_safetensors_f32(const std::filesystem::path& path, std::vector<SafetensorsEntry> entries,
                           const std::function<std::vector<float>(const SafetensorsEntry&)>& produce,
                           const std::map<std::string, std::string>& metadata = {});

}  // namespace drivevqa
