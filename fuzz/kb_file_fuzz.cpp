// The knowledge-base reader (kb/kb_file.h) and the tokenising its notes go through.
#include "fuzz/fuzz_target.h"
#include "kb/kb_file.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const drivevqa::KbFile kb = drivevqa::parse_kb(text, "fuzz-kb.json");
    for (const drivevqa::KbEntry& e : kb.entries) {
      drivevqa::kb_tokens(drivevqa::replace_object_refs(e.question + " " + e.answer));
      drivevqa::normalise_question(e.question);
    }
  } catch (const drivevqa::Error&) {
  }
  drivevqa::kb_tokens(drivevqa::replace_object_refs(text));  // raw text too: object references, tokens
  return 0;
}
