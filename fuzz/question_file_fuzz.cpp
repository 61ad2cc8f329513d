// The question file reader (dataset/question_file.h).
#include "dataset/question_file.h"
#include "fuzz/fuzz_target.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  drivevqa::DatasetOptions options;
  options.check_images = false;  // no file system: the reader's parsing only
  try {
    drivevqa::parse_question_list(std::string(reinterpret_cast<const char*>(data), size), "fuzz.json", options);
  } catch (const drivevqa::Error&) {
  }
  return 0;
}
