#include "modelgen/safetensors_writer.h"

#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "util/error.h"
#include "util/atomic_file.h"
#include "util/files.h"

namespace drivevqa {

void write_safetensors_f32(const std::filesystem::path& path, std::vector<SafetensorsEntry> entries,
                           const std::function<std::vector<float>(const SafetensorsEntry&)>& produce,
                           const std::map<std::string, std::string>& metadata) {
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const SafetensorsEntry& e : entries) {
    uint64_t count = 1;
    for (int64_t d : e.shape) count *= static_cast<uint64_t>(d);
    header[e.name] = {{"dtype", "F32"}, {"shape", e.shape}, {"data_offsets", {offset, offset + 4 * count}}};
    offset += 4 * count;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data section 8-byte aligned
  AtomicFile file(path);
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));
  file.write(length, 8);
  file.write(text.data(), text.size());
  for (const SafetensorsEntry& e : entries) {
    const std::vector<float> values = produce(e);
    file.write(values.data(), values.size() * sizeof(float));
  }
  file.commit();
}

}  // namespace drivevqa
