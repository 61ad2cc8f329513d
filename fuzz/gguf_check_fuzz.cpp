// The GGUF checks run before the engine (engine/gguf_check.h): ggml's GGUF parser and then the
// text, vision or LoRA checks, on the file path Model::load hands them. The first byte picks the
// role; the rest is the file, held in a memfd and opened as /proc/self/fd/N.
#include <sys/mman.h>
#include <unistd.h>

#include <ggml.h>

#include <string>

#include "engine/gguf_check.h"
#include "fuzz/fuzz_target.h"
#include "util/error.h"

namespace {

// The mini text model of the corpus (text-mini.seed: 8 wide, 1 layer, 16 tokens, FFN 16), as the
// base of the LoRA role.
drivevqa::TextModelFacts mini_base() {
  drivevqa::TextModelFacts base;
  base.embedding_width = 8;
  base.tensor_shapes = {{"token_embd.weight", {8, 16, 1, 1}},     {"output.weight", {8, 16, 1, 1}},
                        {"blk.0.attn_q.weight", {8, 8, 1, 1}},    {"blk.0.attn_k.weight", {8, 4, 1, 1}},
                        {"blk.0.attn_v.weight", {8, 4, 1, 1}},    {"blk.0.attn_output.weight", {8, 8, 1, 1}},
                        {"blk.0.ffn_gate.weight", {8, 16, 1, 1}}, {"blk.0.ffn_up.weight", {8, 16, 1, 1}},
                        {"blk.0.ffn_down.weight", {16, 8, 1, 1}}, {"blk.0.attn_norm.weight", {8, 1, 1, 1}}};
  return base;
}

int scratch_fd() {
  // ggml's parser reports each refusal on stderr; thousands of them would drown the run's output.
  ggml_log_set([](ggml_log_level, const char*, void*) {}, nullptr);
  return memfd_create("gguf_check_fuzz", 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const int fd = scratch_fd();
  static const drivevqa::TextModelFacts base = mini_base();
  if (size < 1 || fd < 0) return 0;
  if (ftruncate(fd, 0) != 0 || pwrite(fd, data + 1, size - 1, 0) != static_cast<ssize_t>(size - 1)) return 0;
  const std::filesystem::path path = "/proc/self/fd/" + std::to_string(fd);
  try {
    switch (data[0] % 3) {
      case 0: drivevqa::check_text_model_file(path); break;
      case 1: drivevqa::check_vision_model_file(path, base.embedding_width); break;
      default: drivevqa::check_lora_file(path, base); break;
    }
  } catch (const drivevqa::Error&) {
  }
  return 0;
}
