// The Hugging Face / PEFT JSON readers: config.json (convert/hf_config.h) and adapter_config.json
// (lora/peft_adapter.h). The first byte picks the file; the rest is its content, written into a
// scratch folder because both readers take a folder.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "convert/hf_config.h"
#include "fuzz/fuzz_target.h"
#include "lora/peft_adapter.h"
#include "util/error.h"

namespace {

const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("drivevqa-fuzz-configs-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool adapter = data[0] & 1;
  const auto file = scratch() / (adapter ? "adapter_config.json" : "config.json");
  std::filesystem::remove(scratch() / "config.json");
  std::filesystem::remove(scratch() / "adapter_config.json");
  std::ofstream(file, std::ios::binary).write(reinterpret_cast<const char*>(data) + 1, static_cast<std::streamsize>(size - 1));
  try {
    if (adapter) {
      drivevqa::PeftAdapter a(scratch());
    } else {
      drivevqa::read_hf_config(scratch());
    }
  } catch (const drivevqa::Error&) {
  }
  return 0;
}
