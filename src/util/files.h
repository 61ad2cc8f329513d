// Small file helpers shared by every stage.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace drivevqa {

// Whole file as bytes. Throws InputError naming the path when it is missing or unreadable.
std::vector<uint8_t> read_file_bytes(const std::filesystem::path& path);

// Writes `bytes` to `path` atomically: a temp file in the same folder, fsync, rename.
// On failure the previous file at `path` is untouched. Throws OutputError naming the path.
void write_file_atomic(const std::filesystem::path& path, const void* data, size_t size);
inline void write_file_atomic(const std::filesystem::path& path, const std::string& text) {
  write_file_atomic(path, text.data(), text.size());
}

}  // namespace drivevqa
