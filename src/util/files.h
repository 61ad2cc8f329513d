// Reading user files: the one way every stage reads a file it was given.
//
// Only regular files are read, judged by the open descriptor (a path swapped for a FIFO after a
// check is still refused). Nothing here blocks for ever: the file is opened and read with
// O_NONBLOCK, a file that has no data yet is waited for in short slices, and SIGINT / SIGTERM
// (util/interrupt.h) end the wait with Interrupted. A read that blocks inside the kernel (a FUSE
// file whose server does not answer) returns when a signal interrupts it; the no-data timeout
// cannot end it.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace drivevqa {

// How long a file may give no data (a special file that answers "try again", a file another
// program holds a lease on) before it is refused.
constexpr std::chrono::milliseconds kNoDataTimeout{10'000};

struct ReadLimits {
  // A larger file is refused before a byte is read; one that grows past it while read, too.
  std::optional<uint64_t> max_bytes;
  std::chrono::milliseconds no_data_timeout = kNoDataTimeout;
};

// What a file of this type (st_mode) is, for messages: "is a folder", "is a FIFO (named pipe)",
// "is a device", "is a socket"; empty for a regular file.
std::string non_regular_words(unsigned mode);
// Why `path` cannot be read as a regular file, judged by its name ("not found", "permission
// denied", "is a folder", ...); empty when it can be tried. For early skips and messages only: a
// read decides again on the opened descriptor.
std::string unreadable_reason(const std::filesystem::path& path);

// Whole file as bytes. Throws InputError naming the path and saying what is wrong (not found,
// permission denied, is a folder / FIFO / device / socket, too large, no data), Interrupted on
// SIGINT / SIGTERM while it waits.
std::vector<uint8_t> read_file_bytes(const std::filesystem::path& path, const ReadLimits& limits = {});
// The same, as text.
std::string read_text_file(const std::filesystem::path& path, const ReadLimits& limits = {});

}  // namespace drivevqa
