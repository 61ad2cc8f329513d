// Answering one prompt from scratch: tokenize, encode, evaluate, generate, in a context sized for it.
// This is the plain path (`drivevqa ask`) and the reference the frame-level paths are checked against.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "engine/session.h"

namespace drivevqa {

struct AnswerTimings {
  double encode_seconds = 0;    // vision tower
  double prompt_seconds = 0;    // evaluating the prompt into the KV cache
  double generate_seconds = 0;
};

struct Answer {
  Generation generation;
  size_t prompt_tokens = 0;
  AnswerTimings timings;
};

// The largest context answer_prompt makes for `images` and a budget of `max_new_tokens`, for the
// memory check at load time (EngineOptions::planned_context): every image at its full token count
// (28x28 pixels a token, within the options' limits) plus room for the text.
int planned_answer_context(std::span<const RgbImage* const> images, const EngineOptions& options, int max_new_tokens);

// `prompt_text` is the full chat text with one image marker per image. The context takes
// `session` (its n_ctx is replaced by what the prompt needs).
Answer answer_prompt(const Model& model, const std::string& prompt_text, std::span<const RgbImage* const> images,
                     const GenerationParams& params, SessionOptions session = {});

// Several answers to one prompt (self-consistency samples), in the order of `answers`: the prompt is
// evaluated once and every further answer forks it (engine/parallel_decode.h), all decoded together.
std::vector<Generation> answer_prompt_group(const Model& model, const std::string& prompt_text,
                                            std::span<const RgbImage* const> images,
                                            std::span<const GenerationParams> answers, SessionOptions session = {});

}  // namespace drivevqa
