// Reading user files: the one way every stage reads a file it was given.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace drivevqa {

// Whole file as bytes. Throws InputError naming the path when it is missing or unreadable.
std::vector<uint8_t> read_file_bytes(const std::filesystem::path& path);
// The same, as text.
std::string read_text_file(const std::filesystem::path& path);

}  // namespace drivevqa
