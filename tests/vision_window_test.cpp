// Qwen2.5-VL's window blocks computed per window (engine patch 0001, cmake/engine-patches) against
// the engine's reference path, full attention with an n_pos x n_pos window mask, selected by
// MTMD_QWEN25VL_WINDOW_ATTN=dense. Both run for real on random f32 models of each preset.
//
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "engine/memory_plan.h"
#include "engine/model.h"
#include "engine/prompt_tokens.h"
#include "modelgen/random_model.h"
#include "support/test_support.h"

namespace drivevqa {
namespace {

constexpr const char* kModeVariable = "MTMD_QWEN25VL_WINDOW_ATTN";

// Selects the dense reference path for its lifetime (the engine reads the variable per graph).
class DenseWindowAttention {
 public:
  DenseWindowAttention() { setenv(kModeVariable, "dense", 1); }
  ~DenseWindowAttention() { unsetenv(kModeVariable); }
  DenseWindowAttention(const DenseWindowAttention&) = delete;
  DenseWindowAttention& operator=(const DenseWindowAttention&) = delete;
};

EngineOptions vision_test_options(FlashAttention kernel = FlashAttention::kAuto) {
  EngineOptions options;
  options.n_threads = 2;
  options.image_max_tokens = 4096;  // no image of these tests is resized
  options.flash_attention = kernel;
  return options;
}

std::vector<float> image_embedding(const Model& model, const RgbImage& image) {
  const RgbImage* pointer = &image;
  EncodedPrompt encoded = encode(model, tokenize(model, mtmd_default_marker(), {&pointer, 1}, false));
  for (auto& embedding : encoded.image_embeddings) {
    if (!embedding.empty()) return std::move(embedding);
  }
  ADD_FAILURE() << "no image chunk";
  return {};
}

// The measure, max |a - b| over ||b||, and the stricter ||a - b|| / ||b|| (L2 norms).
struct Agreement {
  double max_abs_over_norm = 0;
  double relative_l2 = 0;
};

Agreement agreement(const std::vector<float>& got, const std::vector<float>& reference) {
  double max_abs = 0, diff2 = 0, norm2 = 0;
  for (size_t i = 0; i < reference.size(); ++i) {
    const double d = static_cast<double>(got[i]) - reference[i];
    max_abs = std::max(max_abs, std::fabs(d));
    diff2 += d * d;
    norm2 += static_cast<double>(reference[i]) * reference[i];
  }
  return {max_abs / std::sqrt(norm2), std::sqrt(diff2 / norm2)};
}

struct ImageSize {
  int width, height;  // multiples of 28, so the engine takes them as they are
};

// Without flash attention everything is f32 and the paths differ only in summation order (a
// window's keys sit at other SIMD lanes in the dense row; bit-identical where every window is
// whole): relative L2 up to 3e-5 measured. The CPU's flash-attention kernel (the engine's default)
// holds K, V and its accumulator in f16, so there the paths round differently, as that kernel and
// the f32 one do on the same path.
struct Kernel {
  FlashAttention setting;
  double tolerance;  // relative L2
};
constexpr Kernel kF32Kernel{FlashAttention::kOff, 1e-4};
constexpr Kernel kFlashKernel{FlashAttention::kOn, 1e-3};

// At least one of `sizes` has a merged-token grid that is not a multiple of the 4 x 4 window.
// The vision weights are drawn calm (vision_init_scale 0.5), as trained ones are.
void expect_windowed_equals_dense(const std::string& preset, const std::vector<ImageSize>& sizes,
                                  const std::vector<Kernel>& kernels) {
  const auto dir = test::scratch_dir("window-" + preset);
  RandomModelOptions model{preset, 3, GGML_TYPE_F32};
  model.vision_init_scale = 0.5f;
  write_random_model(dir, model);
  const ModelFiles files = find_model_files(dir);
  for (const Kernel& kernel : kernels) {
    const auto windowed = Model::load(files, vision_test_options(kernel.setting));
    std::unique_ptr<Model> dense;
    {
      DenseWindowAttention mode;
      dense = Model::load(files, vision_test_options(kernel.setting));
    }
    for (const auto& size : sizes) {
      const std::string name = preset + " " + std::to_string(size.width) + "x" + std::to_string(size.height) +
                               (kernel.setting == FlashAttention::kOn ? " flash" : " f32");
      SCOPED_TRACE(name);
      const RgbImage image = test::dark_noise_image(size.width, size.height, 5);
      const auto fast = image_embedding(*windowed, image);
      std::vector<float> reference;
      {
        DenseWindowAttention mode;
        reference = image_embedding(*dense, image);
      }
      const size_t tokens = static_cast<size_t>(size.width / 28) * (size.height / 28);
      ASSERT_EQ(reference.size(), tokens * windowed->embedding_width());
      ASSERT_EQ(fast.size(), reference.size());
      const Agreement a = agreement(fast, reference);
      std::printf("%s: windowed vs dense: max-abs over norm %.2e, relative L2 %.2e\n", name.c_str(),
                  a.max_abs_over_norm, a.relative_l2);
      EXPECT_LE(a.max_abs_over_norm, 1e-4);
      EXPECT_LE(a.relative_l2, kernel.tolerance);
      // A different image must move the embedding far more than the two paths differ.
      const auto other = image_embedding(*windowed, test::dark_noise_image(size.width, size.height, 6));
      EXPECT_GT(agreement(other, reference).relative_l2, 1e-2);
    }
  }
}

// 8 x 8 merged tokens (2 x 2 whole windows), 11 x 7 and 17 x 5 (padded edge windows).
TEST(WindowAttention, TinyAgreesWithDenseMask) {
  expect_windowed_equals_dense("tiny", {{224, 224}, {308, 196}, {476, 140}}, {kF32Kernel, kFlashKernel});
}

TEST(WindowAttention, SmallAgreesWithDenseMask) {
#ifdef DRIVEVQA_SANITIZED_BUILD
  GTEST_SKIP() << "the same engine code as the normal build; the tiny preset's test covers drivevqa's";
#endif
  expect_windowed_equals_dense("small", {{224, 224}, {308, 196}, {476, 140}}, {kF32Kernel, kFlashKernel});
}

// Qwen2.5-VL-7B's vision shape; small images keep the dense reference to seconds, and the f32
// kernel only (bench/vision.sh compares the flash kernel's paths at full resolution). The engine is
// not instrumented by the sanitizer build, so that build would only repeat it slower.
TEST(WindowAttention, Vision7bAgreesWithDenseMask) {
#ifdef DRIVEVQA_SANITIZED_BUILD
  GTEST_SKIP() << "the same engine code as the normal build; 2.6 GB of f32 weights to write";
#endif
  expect_windowed_equals_dense("vision7b", {{224, 224}, {308, 196}, {140, 84}}, {kF32Kernel});
}

// The patch is in place: the warm-up image's compute buffer (46 x 46 tokens, 8,464 patches) no
// longer holds the n_pos x n_pos f32 mask (286 MB).
TEST(WindowAttention, NoFullSizeMaskIsAllocated) {
  const auto dir = test::scratch_dir("window-memory");
  write_random_model(dir, {"tiny", 3, GGML_TYPE_F32});
  const ModelFiles files = find_model_files(dir);
  auto vision_bytes = [&] {
    const MemoryNeed need = measure_memory_need(files, vision_test_options());
    EXPECT_TRUE(need.measured);
    return need.vision_compute_per_token * kVisionWarmupTokens;
  };
  const uint64_t windowed = vision_bytes();
  uint64_t dense = 0;
  {
    DenseWindowAttention mode;
    dense = vision_bytes();
  }
  const uint64_t patches = kVisionWarmupTokens * 4;
  std::printf("vision compute buffer: windowed %.1f MB, dense %.1f MB\n", windowed / 1e6, dense / 1e6);
  EXPECT_GE(dense, windowed + patches * patches * sizeof(float));
}

// Whole runs: the demo's greedy answers do not change with the path.
TEST(WindowAttention, DemoAnswersAreTheSameOnBothPaths) {
  const auto dir = test::scratch_dir("window-demo");
  auto run = [&](const std::string& name) {
    const auto out = dir / (name + ".json");
    const auto r = test::run_process({test::drivevqa_binary(), "run", "--json_file",
                                      (test::demo_dir() / "questions.json").string(), "--image_base_dir",
                                      test::demo_dir().string(), "--output_file", out.string(), "--model_7b",
                                      test::tiny_model_dir().string(), "--dtype", "fp16", "--image_max_tokens", "256",
                                      "--max_new_tokens_cap", "12", "-t", "2"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return test::read_text(out);
  };
  const std::string windowed = run("windowed");
  std::string dense;
  {
    DenseWindowAttention mode;  // inherited by the child process
    dense = run("dense");
  }
  EXPECT_GT(windowed.size(), 1000u);
  EXPECT_EQ(windowed, dense);
}

}  // namespace
}  // namespace drivevqa
