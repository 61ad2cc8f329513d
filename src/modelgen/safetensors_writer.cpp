#include "modelgen/safetensors_writer.h"

#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "util/error.h"

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
  const std::string tmp = path.string() + ".partial";
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(tmp.c_str(), "wb"), &std::fclose);
  if (!file) throw OutputError(path.string() + ": cannot create " + tmp);
  const auto check = [&](bool ok) {
    if (!ok) {
      file.reset();
      std::remove(tmp.c_str());
      throw OutputError(path.string() + ": write failed (disk full?)");
    }
  };
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));
  check(std::fwrite(length, 1, 8, file.get()) == 8);
  check(std::fwrite(text.data(), 1, text.size(), file.get()) == text.size());
  for (const SafetensorsEntry& e : entries) {
    const std::vector<float> values = produce(e);
    check(std::fwrite(values.data(), sizeof(float), values.size(), file.get()) == values.size());
  }
  check(std::fflush(file.get()) == 0 && ::fsync(fileno(file.get())) == 0);
  file.reset();
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw OutputError(path.string() + ": cannot move the finished file into place");
}

}  // namespace drivevqa
