// The safetensors header reader (convert/safetensors.h): the input is a whole file (8-byte header
// length, JSON header, data), checked as the memory-mapped reader checks it.
#include <cstring>

#include "convert/safetensors.h"
#include "fuzz/fuzz_target.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  uint64_t header_len = 0;
  std::memcpy(&header_len, data, 8);
  if (header_len > size - 8) return 0;  // the file reader refuses this before parsing
  std::map<std::string, std::string> metadata;
  try {
    const auto tensors = drivevqa::parse_safetensors_header(std::string(reinterpret_cast<const char*>(data) + 8, header_len),
                                                            8 + header_len, size, data, "fuzz.safetensors", &metadata);
    for (const auto& [name, view] : tensors) view.to_f32();  // every accepted tensor must be readable
  } catch (const drivevqa::Error&) {
  }
  return 0;
}
