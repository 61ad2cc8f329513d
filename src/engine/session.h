// One inference context over a loaded Model, and the steps of answering a prompt with images.
//
// The steps are separate on purpose, each with its own hand-off, so that later stages can reuse
// their results (a frame's six images are shared by ~22 questions):
//   1. decode images          -> RgbImage            (engine/image.h, no model needed)
//   2. tokenize(text, images) -> TokenizedPrompt     (engine/prompt_tokens.h)
//   3. encode(prompt)         -> EncodedPrompt       (engine/prompt_tokens.h: the vision tower)
//   4. Session::evaluate      -> next position       (KV cache of one sequence filled)
//   5. Session::generate      -> Generation          (decoding until end of turn or budget)
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/handles.h"
#include "engine/model.h"
#include "engine/prompt_tokens.h"
#include "engine/token_picker.h"

namespace drivevqa {

struct SessionOptions {
  int n_ctx = 4096;        // KV cells for all sequences together
  int n_batch = 2048;      // logical batch (tokens per llama_decode)
  int n_ubatch = 512;      // physical batch
  int n_seq_max = 1;
  ggml_type kv_type = GGML_TYPE_F16;
  std::optional<FlashAttention> flash_attention;  // unset: the model's EngineOptions setting
  // With flash attention off: evaluate_alone() still uses the flash kernel (engine patch 0002). Worth
  // it with an f16 cache only: on a CPU the kernel is 2x faster than the plain one there, 4x slower on bf16.
  bool flash_when_alone = false;
};

struct GenerationParams {
  int max_new_tokens = 512;
  bool do_sample = false;  // false: greedy (argmax)
  float temperature = 1.0f;
  float top_p = 1.0f;
  int top_k = 50;
  uint32_t seed = 888;
  std::string grammar;  // GBNF the answer must follow (engine/token_picker.h); empty: free text
};

// kGrammarEnd: the grammar allowed no further token (the answer is complete in its shape).
// kStopped: the caller ended it (parallel_decode.h's on_text, e.g. a stop string of serve's).
enum class StopReason { kEndOfTurn, kTokenBudget, kGrammarEnd, kStopped };

struct Generation {
  std::string text;
  std::vector<llama_token> tokens;
  StopReason stop = StopReason::kEndOfTurn;
  size_t prompt_tokens = 0;         // KV cells of its prompt: the shared prefix's and its own (set by pipeline/model_worker.h)
  size_t cached_prompt_tokens = 0;  // of those, the prefix's when it was in the cache before its frame started
};

class Session {
 public:
  // Throws ModelError when the engine cannot create the context (e.g. out of memory).
  // `model` must outlive the session (the context belongs to its llama_model).
  Session(const Model& model, const SessionOptions& options);

  // Appends the prompt to sequence `seq` starting at `n_past`; returns the next free position.
  // With logits_last the distribution after the prompt's last token is kept for sampling.
  llama_pos evaluate(const EncodedPrompt& prompt, llama_seq_id seq, llama_pos n_past, bool logits_last);
  // evaluate() for a prompt whose batches hold no other sequence (a frame's shared prefix), without
  // logits. With flash_when_alone it runs on the flash-attention kernel, about twice as fast on long
  // prompts on a CPU: that kernel's rounding depends on what shares a batch, and nothing does, so
  // the result is the same whatever else the session runs.
  llama_pos evaluate_alone(const EncodedPrompt& prompt, llama_seq_id seq, llama_pos n_past);
  // Generates from the logits left by the last evaluate() of `seq`.
  Generation generate(llama_seq_id seq, llama_pos n_past, const GenerationParams& params);

  // Forgets every sequence (the context is reused for an unrelated prompt).
  void clear();
  // Forgets sequence `seq` from position `pos` on (keeps a shared prefix, drops what followed it).
  void truncate(llama_seq_id seq, llama_pos pos);

  // The logits of the last evaluated token that asked for them (n_vocab floats).
  std::span<const float> last_logits() const;
  std::string detokenize(std::span<const llama_token> tokens) const;
  llama_context* context() const { return ctx_.get(); }
  const Model& model() const { return model_; }
  const SessionOptions& options() const { return options_; }

  // llama_decode with a worded ModelError on failure.
  void decode_or_throw(llama_batch& batch, const char* what);

  // Shared by the answers decoded in this session (engine/token_picker.h).
  AllowedTokenCache& allowed_tokens() { return allowed_tokens_; }

 private:
  const Model& model_;
  SessionOptions options_;
  LlamaContextPtr ctx_;
  AllowedTokenCache allowed_tokens_;
};

LlamaSamplerPtr make_sampler(const GenerationParams& params);

// The engine's parameters for a context of `options` over a model run with `engine`.
llama_context_params context_params_for(const EngineOptions& engine, const SessionOptions& options);

}  // namespace drivevqa
