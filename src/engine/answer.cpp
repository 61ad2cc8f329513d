#include "engine/answer.h"

#include <algorithm>
#include <chrono>

#include "engine/parallel_decode.h"
#include "util/stopwatch.h"

namespace drivevqa {
namespace {
constexpr int kTokenSide = 28;          // Qwen2.5-VL: 14-pixel patches merged 2x2
constexpr int kTextRoom = 1024;         // system prompt, question, answer instruction
}  // namespace

int planned_answer_context(std::span<const RgbImage* const> images, const EngineOptions& options, int max_new_tokens) {
  const int most = options.image_token_limit();
  int64_t cells = kTextRoom + int64_t{max_new_tokens};
  for (const RgbImage* image : images) {
    const int64_t tokens = int64_t{(image->width + kTokenSide - 1) / kTokenSide} * ((image->height + kTokenSide - 1) / kTokenSide);
    cells += std::max<int64_t>(std::min<int64_t>(tokens, most), options.image_min_tokens) + 2;  // + vision start/end
  }
  return static_cast<int>(std::min<int64_t>((cells + 255) / 256 * 256, 1 << 30));
}
Answer answer_prompt(const Model& model, const std::string& prompt_text, std::span<const RgbImage* const> images,
                     const GenerationParams& params, SessionOptions options) {
  Answer answer;
  auto t0 = std::chrono::steady_clock::now();
  EncodedPrompt encoded = encode(model, tokenize(model, prompt_text, images));
  answer.timings.encode_seconds = seconds_since(t0);
  answer.prompt_tokens = encoded.prompt.token_count();

  const int needed = static_cast<int>(answer.prompt_tokens) + params.max_new_tokens + 1;
  options.n_ctx = (needed + 255) / 256 * 256;
  Session session(model, options);
  t0 = std::chrono::steady_clock::now();
  const llama_pos n_past = session.evaluate(encoded, 0, 0, /*logits_last=*/true);
  answer.timings.prompt_seconds = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  answer.generation = session.generate(0, n_past, params);
  answer.timings.generate_seconds = seconds_since(t0);
  return answer;
}

std::vector<Generation> answer_prompt_group(const Model& model, const std::string& prompt_text,
                                            std::span<const RgbImage* const> images,
                                            std::span<const GenerationParams> answers, SessionOptions options) {
  const EncodedPrompt encoded = encode(model, tokenize(model, prompt_text, images));
  std::vector<QuestionRequest> requests;
  size_t cells = 1;
  for (size_t k = 0; k < answers.size(); ++k) {
    requests.push_back({&encoded, answers[k], k > 0});
    cells += cells_needed(requests.back());
  }
  options.n_ctx = static_cast<int>((cells + 255) / 256 * 256);
  options.n_seq_max = static_cast<int>(answers.size()) + 1;
  Session session(model, options);
  std::vector<Generation> out(answers.size());
  decode_parallel(session, 0, 0, requests, static_cast<int>(answers.size()),
                  [&](size_t i, Generation g) { out[i] = std::move(g); });
  return out;
}

}  // namespace drivevqa
