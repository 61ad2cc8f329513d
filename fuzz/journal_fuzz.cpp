// The journal reader (results/journal.h): an existing journal of arbitrary content is opened for
// resuming, as after a crash; it must be trusted only as far as it is intact.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "fuzz/fuzz_target.h"
#include "results/journal.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("drivevqa-fuzz-journal-" + std::to_string(::getpid()));
  // Inputs that start with '+' get the expected header in front, to reach the answer lines.
  const drivevqa::JournalKey key{"input-fingerprint", "settings-fingerprint"};
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (size > 0 && data[0] == '+') {
      out << R"({"drivevqa_journal":2,"input":"input-fingerprint","settings":"settings-fingerprint"})" << '\n';
      out.write(reinterpret_cast<const char*>(data) + 1, static_cast<std::streamsize>(size - 1));
    } else {
      out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    }
  }
  try {
    drivevqa::Journal journal(path, key, false);
    for (const auto& [index, entry] : journal.entries()) (void)entry.result.answer.size();
  } catch (const drivevqa::Error&) {
  }
  return 0;
}
