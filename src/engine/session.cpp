#include "engine/session.h"

#include <algorithm>
#include <cstring>

#include "util/error.h"

namespace drivevqa {
llama_context_params context_params_for(const EngineOptions& engine, const SessionOptions& options) {
  llama_context_params cparams = llama_context_default_params();
  cparams.n_ctx = static_cast<uint32_t>(options.n_ctx);
  cparams.n_batch = static_cast<uint32_t>(options.n_batch);
  cparams.n_ubatch = static_cast<uint32_t>(options.n_ubatch);
  cparams.n_seq_max = static_cast<uint32_t>(options.n_seq_max);
  cparams.n_threads = resolved_thread_count(engine);
  cparams.n_threads_batch = cparams.n_threads;
  cparams.flash_attn_type = to_llama(options.flash_attention.value_or(engine.flash_attention));
  cparams.type_k = options.kv_type;
  cparams.type_v = options.kv_type;
  cparams.kv_unified = true;
  cparams.no_perf = true;
  return cparams;
}

Session::Session(const Model& model, const SessionOptions& options) : model_(model), options_(options) {
  const llama_context_params cparams = context_params_for(model.options(), options);
  ctx_.reset(llama_init_from_model(model.text(), cparams));
  if (!ctx_) {
    throw ModelError(model.files().text.string() + ": the engine could not create an inference context of " +
                     std::to_string(options.n_ctx) + " tokens (out of memory?)");
  }
  if (llama_adapter_lora* lora = model.lora()) {
    float scale = 1.0f;  // the adapter's own alpha / rank is applied by the engine
    if (llama_set_adapters_lora(ctx_.get(), &lora, 1, &scale) != 0) {
      throw ModelError(model.files().lora->string() + ": the engine could not apply this LoRA adapter");
    }
  }
}

llama_pos Session::evaluate(const EncodedPrompt& encoded, llama_seq_id seq, llama_pos n_past, bool logits_last) {
  const TokenizedPrompt& prompt = encoded.prompt;
  const size_t n = prompt.chunk_count();
  for (size_t i = 0; i < n; ++i) {
    const mtmd_input_chunk* chunk = prompt.chunk(i);
    llama_pos next = n_past;
    int32_t rc = 0;
    if (prompt.is_image(i)) {
      // The embeddings are copied because the helper takes a mutable pointer.
      std::vector<float> embd = encoded.image_embeddings[i];
      rc = mtmd_helper_decode_image_chunk(model_.vision(), ctx_.get(), chunk, embd.data(), n_past, seq,
                                          options_.n_batch, &next, nullptr, nullptr);
    } else {
      rc = mtmd_helper_eval_chunk_single(model_.vision(), ctx_.get(), chunk, n_past, seq, options_.n_batch,
                                         logits_last && i + 1 == n, &next);
    }
    if (rc != 0) {
      throw ModelError("the engine failed to evaluate prompt part " + std::to_string(i) + " (context of " +
                       std::to_string(options_.n_ctx) + " tokens full, or out of memory)");
    }
    n_past = next;
  }
  return n_past;
}

llama_pos Session::evaluate_alone(const EncodedPrompt& prompt, llama_seq_id seq, llama_pos n_past) {
  if (!options_.flash_when_alone) return evaluate(prompt, seq, n_past, false);
  struct FlashKernel {  // back to the context's own kernel, also on an exception
    llama_context* ctx;
    explicit FlashKernel(llama_context* c) : ctx(c) { llama_set_flash_attn(ctx, true); }
    ~FlashKernel() { llama_set_flash_attn(ctx, false); }
  } flash(ctx_.get());
  return evaluate(prompt, seq, n_past, false);
}

void Session::decode_or_throw(llama_batch& batch, const char* what) {
  const int32_t rc = llama_decode(ctx_.get(), batch);
  if (rc != 0) {
    throw ModelError(std::string("the engine failed to decode ") + what + " (code " + std::to_string(rc) +
                     (rc == 1 ? ": no room left in the context)" : ")"));
  }
}

Generation Session::generate(llama_seq_id seq, llama_pos n_past, const GenerationParams& params) {
  TokenPicker picker(model_.vocab(), params, &allowed_tokens_);
  const llama_vocab* vocab = model_.vocab();
  LlamaBatch batch(1, 1);
  Generation out;
  out.stop = StopReason::kTokenBudget;
  for (int i = 0; i < params.max_new_tokens; ++i) {
    const llama_token token = picker.pick(ctx_.get(), -1);
    if (token == LLAMA_TOKEN_NULL || llama_vocab_is_eog(vocab, token)) {
      out.stop = token == LLAMA_TOKEN_NULL ? StopReason::kGrammarEnd : StopReason::kEndOfTurn;
      break;
    }
    picker.accept(token);
    out.tokens.push_back(token);
    if (i + 1 == params.max_new_tokens) break;  // the budget is spent: no need to evaluate it
    batch.clear();
    batch.add(token, n_past++, seq, true);
    decode_or_throw(batch.get(), "a generated token");
  }
  out.text = detokenize(out.tokens);
  return out;
}

void Session::clear() { llama_memory_clear(llama_get_memory(ctx_.get()), true); }

void Session::truncate(llama_seq_id seq, llama_pos pos) {
  if (!llama_memory_seq_rm(llama_get_memory(ctx_.get()), seq, pos, -1)) {
    throw ModelError("the engine could not drop the cached tokens after position " + std::to_string(pos));
  }
}

std::span<const float> Session::last_logits() const {
  const float* logits = llama_get_logits_ith(ctx_.get(), -1);
  if (!logits) return {};
  return {logits, static_cast<size_t>(llama_vocab_n_tokens(model_.vocab()))};
}

std::string Session::detokenize(std::span<const llama_token> tokens) const {
  std::string text(tokens.size() * 8 + 16, '\0');
  int32_t n = llama_detokenize(model_.vocab(), tokens.data(), static_cast<int32_t>(tokens.size()), text.data(),
                               static_cast<int32_t>(text.size()), /*remove_special=*/false, /*unparse_special=*/false);
  if (n < 0) {
    text.resize(static_cast<size_t>(-n));
    n = llama_detokenize(model_.vocab(), tokens.data(), static_cast<int32_t>(tokens.size()), text.data(),
                         static_cast<int32_t>(text.size()), false, false);
  }
  text.resize(static_cast<size_t>(std::max(0, n)));
  return text;
}

LlamaSamplerPtr make_sampler(const GenerationParams& params) {
  LlamaSamplerPtr chain(llama_sampler_chain_init(llama_sampler_chain_default_params()));
  if (!params.do_sample) {
    llama_sampler_chain_add(chain.get(), llama_sampler_init_greedy());
    return chain;
  }
  if (params.top_k > 0) llama_sampler_chain_add(chain.get(), llama_sampler_init_top_k(params.top_k));
  if (params.top_p < 1.0f) llama_sampler_chain_add(chain.get(), llama_sampler_init_top_p(params.top_p, 1));
  llama_sampler_chain_add(chain.get(), llama_sampler_init_temp(params.temperature));
  // llama.cpp reads LLAMA_DEFAULT_SEED as "a random seed": every seed must reproduce.
  const uint32_t seed = params.seed == LLAMA_DEFAULT_SEED ? LLAMA_DEFAULT_SEED - 1 : params.seed;
  llama_sampler_chain_add(chain.get(), llama_sampler_init_dist(seed));
  return chain;
}

}  // namespace drivevqa
