#include "engine/answer.h"

#include <chrono>

#include "util/stopwatch.h"

namespace drivevqa {
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

}  // namespace drivevqa
