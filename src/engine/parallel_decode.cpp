#include "engine/parallel_decode.h"

#include <algorithm>
#include <memory>
#include <vector>

#include "util/error.h"
#include "util/interrupt.h"

namespace drivevqa {
namespace {

// One question being decoded in its own sequence.
struct Running {
  size_t request = 0;
  llama_seq_id seq = 0;
  llama_pos n_past = 0;       // position of the next token to evaluate
  size_t reserved_cells = 0;
  std::unique_ptr<TokenPicker> picker;
  Generation generation;
  llama_token pending = LLAMA_TOKEN_NULL;  // sampled, waiting to be evaluated
  bool done = false;
};

// A token of the next batch; `sampler_of` samples from its logits (null: no logits wanted).
struct BatchEntry {
  llama_token token;
  llama_pos pos;
  llama_seq_id seq;
  Running* sampler_of;
};

// The suffix's token ids when it is text only; false when it holds an image.
bool text_tokens(const TokenizedPrompt& prompt, std::vector<llama_token>& tokens) {
  for (size_t i = 0; i < prompt.chunk_count(); ++i) {
    if (prompt.is_image(i)) return false;
    size_t n = 0;
    const llama_token* t = mtmd_input_chunk_get_tokens_text(prompt.chunk(i), &n);
    tokens.insert(tokens.end(), t, t + n);
  }
  return true;
}

}  // namespace

size_t cells_needed(const QuestionRequest& request) {
  return request.suffix->prompt.token_count() + static_cast<size_t>(std::max(0, request.params.max_new_tokens));
}

void decode_parallel(Session& session, llama_pos prefix_end, size_t prefix_cells, std::span<const QuestionRequest> requests,
                     int max_parallel, const std::function<void(size_t, Generation)>& on_done, ParallelDecodeStats* stats) {
  ParallelDecodeStats local;
  ParallelDecodeStats& st = stats ? *stats : local;
  llama_context* ctx = session.context();
  llama_memory_t memory = llama_get_memory(ctx);
  const llama_vocab* vocab = session.model().vocab();
  const int n_batch = session.options().n_batch;
  if (max_parallel < 1 || max_parallel >= session.options().n_seq_max) {
    throw ModelError("parallel decoding needs sequences 1.." + std::to_string(max_parallel) + " but the context has " +
                     std::to_string(session.options().n_seq_max));
  }

  std::vector<llama_seq_id> free_seqs;
  for (llama_seq_id s = max_parallel; s >= 1; --s) free_seqs.push_back(s);
  const size_t capacity = static_cast<size_t>(session.options().n_ctx);
  size_t free_cells = capacity > prefix_cells ? capacity - prefix_cells : 0;
  std::vector<std::unique_ptr<Running>> running;
  size_t next = 0;

  const auto finish = [&](Running& r, StopReason why) {
    r.done = true;
    r.generation.stop = why;
    r.generation.text = session.detokenize(r.generation.tokens);
    llama_memory_seq_rm(memory, r.seq, -1, -1);
    free_cells += r.reserved_cells;
    free_seqs.push_back(r.seq);
    st.generated_tokens += r.generation.tokens.size();
    st.grammar_seconds += r.picker->grammar_seconds();
    on_done(r.request, std::move(r.generation));
  };
  // Mirrors Session::generate: stop at end of turn, or once the budget is spent (without evaluating the last token).
  const auto accept = [&](Running& r, llama_token token) {
    if (token == LLAMA_TOKEN_NULL) return finish(r, StopReason::kGrammarEnd);
    if (llama_vocab_is_eog(vocab, token)) return finish(r, StopReason::kEndOfTurn);
    r.picker->accept(token);
    r.generation.tokens.push_back(token);
    if (static_cast<int>(r.generation.tokens.size()) >= requests[r.request].params.max_new_tokens) {
      return finish(r, StopReason::kTokenBudget);
    }
    r.pending = token;
  };

  const auto next_token = [&](Running& r, int32_t batch_index) { return r.picker->pick(ctx, batch_index); };

  LlamaBatch batch(n_batch, 1);
  std::vector<BatchEntry> entries;
  while (next < requests.size() || !running.empty()) {
    throw_if_interrupted();  // the questions still running are dropped; the finished ones were delivered
    entries.clear();
    for (const auto& r : running) {
      if (r->pending == LLAMA_TOKEN_NULL) continue;
      entries.push_back({r->pending, r->n_past++, r->seq, r.get()});
      r->pending = LLAMA_TOKEN_NULL;
    }
    // Start waiting questions while a sequence and room for their whole budget are free.
    while (next < requests.size() && !free_seqs.empty()) {
      const QuestionRequest& request = requests[next];
      const size_t need = cells_needed(request);
      if (need > free_cells) {
        if (!running.empty()) break;  // wait for a running question to end
        throw ModelError("a question needs " + std::to_string(need) + " KV cells after the shared prefix, the context has " +
                         std::to_string(free_cells));
      }
      auto r = std::make_unique<Running>();
      r->request = next++;
      if (request.params.max_new_tokens <= 0) {
        on_done(r->request, Generation{});
        continue;
      }
      r->picker = std::make_unique<TokenPicker>(vocab, request.params, &session.allowed_tokens());  // may throw: first
      r->seq = free_seqs.back();
      free_seqs.pop_back();
      r->reserved_cells = need;
      free_cells -= need;
      if (prefix_end > 0) llama_memory_seq_cp(memory, 0, r->seq, -1, -1);
      std::vector<llama_token> tokens;
      if (text_tokens(request.suffix->prompt, tokens) && !tokens.empty()) {
        for (size_t k = 0; k < tokens.size(); ++k) {
          entries.push_back({tokens[k], prefix_end + static_cast<llama_pos>(k), r->seq,
                             k + 1 == tokens.size() ? r.get() : nullptr});
        }
        r->n_past = prefix_end + static_cast<llama_pos>(tokens.size());
        st.suffix_tokens += tokens.size();
      } else {
        // A suffix with images (no shared prefix) goes through the engine's own chunk evaluation.
        r->n_past = session.evaluate(*request.suffix, r->seq, prefix_end, true);
        st.suffix_tokens += request.suffix->prompt.token_count();
        accept(*r, next_token(*r, -1));
      }
      running.push_back(std::move(r));
    }
    st.max_running = std::max(st.max_running, running.size());

    for (size_t start = 0; start < entries.size(); start += static_cast<size_t>(n_batch)) {
      const size_t end = std::min(entries.size(), start + static_cast<size_t>(n_batch));
      batch.clear();
      for (size_t i = start; i < end; ++i) {
        batch.add(entries[i].token, entries[i].pos, entries[i].seq, entries[i].sampler_of != nullptr);
      }
      session.decode_or_throw(batch.get(), "a batch of questions");
      ++st.decode_calls;
      for (size_t i = start; i < end; ++i) {
        if (Running* r = entries[i].sampler_of) {
          accept(*r, next_token(*r, static_cast<int32_t>(i - start)));
        }
      }
    }
    std::erase_if(running, [](const std::unique_ptr<Running>& r) { return r->done; });
  }
}

}  // namespace drivevqa
