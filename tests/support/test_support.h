// Shared helpers for the test suite: generated fixtures and running real processes.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/image.h"
#include "engine/model.h"

namespace drivevqa::test {

// Under ASan + UBSan (scripts/test.sh --sanitize) every drivevqa process runs several times slower,
// so the repeated-kill and race tests take fewer rounds there: enough to reach each path a few
// times, while the normal build keeps every round.
#if defined(DRIVEVQA_SANITIZED_BUILD) || defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitizedBuild = true;
#else
inline constexpr bool kSanitizedBuild = false;
#endif

// `full` in the normal build, `sanitized` under the sanitizers.
template <typename T>
constexpr T normal_or_sanitized(T full, T sanitized) {
  return kSanitizedBuild ? sanitized : full;
}

// Folder with the fixtures made once per test run by the `fixtures` CTest step:
//   tiny/  (model.gguf + mmproj.gguf, seed 1)    tiny-hf/  (the same weights as a Hugging Face folder)
//   demo/  (make-demo output)
std::filesystem::path fixtures_dir();
std::filesystem::path tiny_model_dir();
std::filesystem::path demo_dir();
// A copy of the fixtures' Hugging Face folder (make-model --format hf --preset tiny --seed 1: the
// same weights as tiny/) at `dest`, the test's own to change: a file copy, not a new random model.
void copy_tiny_hf_model(const std::filesystem::path& dest);
// The tiny model loaded in this process, 2 threads (a test suite's, for the engine's own calls).
std::unique_ptr<Model> load_tiny_model();

// A fresh empty folder under the system temp dir, removed at exit of the test process.
std::filesystem::path scratch_dir(const std::string& name);

struct ProcessResult {
  int exit_code = -1;    // -1 - signal when killed by a signal
  std::string out;
  std::string err;
};

// Runs `argv` (argv[0]: a path, or a program name looked up in PATH) without a shell and waits for it.
ProcessResult run_process(const std::vector<std::string>& argv);

// Starts `argv` in the background (output discarded); returns its pid.
int spawn_process(const std::vector<std::string>& argv);
// Starts `argv` in the background with stdout and stderr written to those files; returns its pid.
int spawn_process_with_output(const std::vector<std::string>& argv, const std::string& out_file, const std::string& err_file);
// A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick).
int free_tcp_port();
// Waits for a spawned process; returns its exit code (-1 - signal when killed).
int wait_process(int pid);

// The drivevqa binary and the engine's llama-mtmd-cli of this build.
std::string drivevqa_binary();
std::string mtmd_cli_binary();
// The engine's rpc-server; "" when the engine was built without the RPC backend (-DDRIVEVQA_RPC=OFF).
std::string rpc_server_binary();

// The six camera image paths of the demo's first frame, in camera order.
std::vector<std::filesystem::path> first_frame_images();
// Paths joined with commas, as --images takes them.
std::string images_arg(const std::vector<std::filesystem::path>& paths);
// `ask` about the first frame with a model folder (Hugging Face or GGUF) converted into `cache` when
// needed: f32, 16 image tokens, 4 new tokens, one thread; `extra` goes before the question.
std::vector<std::string> cached_ask_args(const std::filesystem::path& model, const std::filesystem::path& cache,
                                         const std::vector<std::string>& extra = {});

std::string read_text(const std::filesystem::path& path);
// How many times `what` occurs in `text` (overlapping occurrences counted).
size_t count_of(const std::string& text, const std::string& what);

// A seeded image of dark values only: no pixel can be mistaken for a marker colour (each has a channel at 255).
RgbImage dark_noise_image(int width, int height, uint32_t seed);
// The RGB bytes of pixel (x, y); the image must outlive the pointer.
inline const uint8_t* pixel(const RgbImage& image, int x, int y) {
  return &image.pixels[(static_cast<size_t>(y) * image.width + x) * 3];
}
void write_bytes(const std::filesystem::path& path, const std::string& bytes);

// Overwrites element `index` of an F32 tensor in a safetensors file, in place (size kept); throws
// std::runtime_error when the tensor is not F32 or the write fails.
void patch_safetensors_f32(const std::filesystem::path& file, const std::string& tensor, size_t index, float value);

// The lines of a run's journal (header first); empty when it does not exist yet.
std::vector<std::string> journal_lines(const std::filesystem::path& journal);

}  // namespace drivevqa::test
