// The engine on the real tiny model: finite logits, deterministic answers, reproducible sampling.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/answer.h"
#include "engine/session.h"
#include "engine/image.h"
#include "modelgen/random_model.h"
#include "prompt/chat_prompt.h"
#include "support/test_support.h"
#include "util/files.h"

namespace drivevqa {
namespace {

constexpr char kQuestion[] = "What are the important objects in the current scene?";

struct FrameImages {
  std::vector<RgbImage> images;
  std::vector<const RgbImage*> pointers;
  std::vector<std::string> cameras;
};

FrameImages load_first_frame() {
  FrameImages f;
  for (const auto& path : test::first_frame_images()) f.images.push_back(load_image_file(path));
  for (const auto& image : f.images) f.pointers.push_back(&image);
  for (auto cam : kCameraOrder) f.cameras.emplace_back(cam);
  return f;
}

EngineOptions test_engine(int image_max_tokens) {
  EngineOptions options;
  options.n_threads = 2;  // greedy output may depend on the thread count
  options.image_max_tokens = image_max_tokens;
  return options;
}

std::string prompt_text(const FrameImages& f) {
  return render_chatml({default_system_prompt(), image_block(f.cameras) + kQuestion});
}

TEST(Engine, DemoQuestionAtFullResolutionHasFiniteLogits) {
  const FrameImages frame = load_first_frame();
  const auto model = Model::load(find_model_files(test::tiny_model_dir()), test_engine(0));
  EncodedPrompt encoded = encode(*model, tokenize(*model, prompt_text(frame), frame.pointers));
  // 1600x900 -> 1596x896: 57 x 32 merged tokens per image.
  EXPECT_GT(encoded.prompt.token_count(), 6u * 57 * 32);
  SessionOptions options;
  options.n_ctx = static_cast<int>(encoded.prompt.token_count()) + 64;
  Session session(*model, options);
  session.evaluate(encoded, 0, 0, true);
  const auto logits = session.last_logits();
  ASSERT_EQ(logits.size(), 151936u);
  size_t finite = 0;
  float lo = logits[0], hi = logits[0];
  for (float v : logits) {
    finite += std::isfinite(v) ? 1 : 0;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  EXPECT_EQ(finite, logits.size());
  EXPECT_GT(hi - lo, 1.0f) << "logits are flat: the random model ignores its input";
}

TEST(Engine, SameModelGivesSameGreedyAnswerAndImagesMatter) {
  const FrameImages frame = load_first_frame();
  GenerationParams params;
  params.max_new_tokens = 12;
  const auto first = Model::load(find_model_files(test::tiny_model_dir()), test_engine(64));
  const Answer a = answer_prompt(*first, prompt_text(frame), frame.pointers, params);
  const auto second = Model::load(find_model_files(test::tiny_model_dir()), test_engine(64));
  const Answer b = answer_prompt(*second, prompt_text(frame), frame.pointers, params);
  EXPECT_EQ(a.generation.tokens, b.generation.tokens);
  EXPECT_EQ(a.generation.text, b.generation.text);
  EXPECT_EQ(a.generation.tokens.size(), 12u);
  EXPECT_EQ(a.generation.stop, StopReason::kTokenBudget);

  // Another frame's images change the answer: the vision path reaches the output.
  FrameImages other = frame;
  std::swap(other.pointers[0], other.pointers[3]);
  const Answer c = answer_prompt(*first, prompt_text(other), other.pointers, params);
  EXPECT_NE(a.generation.tokens, c.generation.tokens);
}

TEST(Engine, DifferentSeedModelGivesDifferentAnswer) {
  const FrameImages frame = load_first_frame();
  const auto dir = test::scratch_dir("seed2");
  write_random_model(dir, {"tiny", 2, GGML_TYPE_F32});
  GenerationParams params;
  params.max_new_tokens = 12;
  const auto seed1 = Model::load(find_model_files(test::tiny_model_dir()), test_engine(64));
  const auto seed2 = Model::load(find_model_files(dir), test_engine(64));
  EXPECT_NE(answer_prompt(*seed1, prompt_text(frame), frame.pointers, params).generation.tokens,
            answer_prompt(*seed2, prompt_text(frame), frame.pointers, params).generation.tokens);
}

TEST(Engine, SamplingIsReproducibleForASeed) {
  const FrameImages frame = load_first_frame();
  const auto model = Model::load(find_model_files(test::tiny_model_dir()), test_engine(64));
  GenerationParams params;
  params.max_new_tokens = 16;
  params.do_sample = true;
  params.temperature = 1.5f;
  params.top_k = 0;
  params.seed = 7;
  const auto a = answer_prompt(*model, prompt_text(frame), frame.pointers, params).generation.tokens;
  const auto b = answer_prompt(*model, prompt_text(frame), frame.pointers, params).generation.tokens;
  params.seed = 8;
  const auto c = answer_prompt(*model, prompt_text(frame), frame.pointers, params).generation.tokens;
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

// A prompt evaluated alone on the flash kernel (engine patch 0002) and continued on the plain one, as
// a frame's prefix and its questions are: the same function of the prompt (logits within rounding),
// computed by the other kernel (not bit-identical: the switch took effect), and reproducible.
std::vector<float> logits_after(const Model& model, const EncodedPrompt& prefix, const EncodedPrompt& question, bool flash) {
  SessionOptions options{4096, 2048, 512, 2, GGML_TYPE_F16, FlashAttention::kOff};
  options.flash_when_alone = flash;
  Session session(model, options);
  const llama_pos end = session.evaluate_alone(prefix, 0, 0);
  session.evaluate(question, 0, end, true);
  return {session.last_logits().begin(), session.last_logits().end()};
}

TEST(Engine, FlashPrefixGivesThePlainPrefixResultWithinRoundingAndRepeats) {
  const FrameImages frame = load_first_frame();
  const auto model = Model::load(find_model_files(test::tiny_model_dir()), test_engine(64));
  const std::string text = render_chatml({default_system_prompt(), image_block(frame.cameras)});
  const EncodedPrompt prefix = encode(*model, tokenize(*model, text, frame.pointers));
  const EncodedPrompt question = encode(*model, tokenize(*model, std::string(kQuestion) + "<|im_end|>\n<|im_start|>assistant\n", {}, false));
  const auto plain = logits_after(*model, prefix, question, false);
  const auto flash = logits_after(*model, prefix, question, true);
  double diff2 = 0, norm2 = 0;
  for (size_t i = 0; i < plain.size(); ++i) {
    diff2 += (flash[i] - plain[i]) * static_cast<double>(flash[i] - plain[i]);
    norm2 += plain[i] * static_cast<double>(plain[i]);
  }
  std::printf("flash prefix vs plain prefix: relative L2 %.2e over %zu logits\n", std::sqrt(diff2 / norm2), plain.size());
  EXPECT_NE(flash, plain) << "the prefix did not run on the flash kernel";
  EXPECT_LT(std::sqrt(diff2 / norm2), 1e-2);
  EXPECT_EQ(logits_after(*model, prefix, question, true), flash);
}

TEST(Determinism, SameSeedSameBytesOtherSeedOtherBytes) {
  const auto a = test::scratch_dir("det-a"), b = test::scratch_dir("det-b"), c = test::scratch_dir("det-c");
  write_random_model(a, {"tiny", 11, GGML_TYPE_F16});
  write_random_model(b, {"tiny", 11, GGML_TYPE_F16});
  write_random_model(c, {"tiny", 12, GGML_TYPE_F16});
  for (const char* file : {"model.gguf", "mmproj.gguf"}) {
    const auto bytes_a = read_file_bytes(a / file);
    EXPECT_EQ(bytes_a, read_file_bytes(b / file)) << file;
    EXPECT_NE(bytes_a, read_file_bytes(c / file)) << file;
  }
}

}  // namespace
}  // namespace drivevqa
