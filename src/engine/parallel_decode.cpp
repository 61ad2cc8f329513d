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

// One call of decode_parallel: the questions running, the sequences and KV cells still free, and
// the batch being put together. Each loop of run() admits what fits, evaluates one batch and picks
// every running question's next token.
class ParallelDecoder {
 public:
  ParallelDecoder(Session& session, llama_pos prefix_end, size_t prefix_cells, std::span<const QuestionRequest> requests,
                  int max_parallel, const std::function<void(size_t, Generation)>& on_done, ParallelDecodeStats& stats);
  // Until every request is delivered; as decode_parallel.
  void run();

 private:
  void queue_pending_tokens();
  void admit_waiting();
  std::unique_ptr<Running> start(size_t request, size_t cells);
  void decode_batch();
  void accept(Running& r, llama_token token);
  void finish(Running& r, StopReason why);
  llama_token pick(Running& r, int32_t batch_index) { return r.picker->pick(ctx_, batch_index); }

  Session& session_;
  llama_context* ctx_;
  llama_memory_t memory_;
  const llama_vocab* vocab_;
  const int n_batch_;
  const llama_pos prefix_end_;
  const std::span<const QuestionRequest> requests_;
  const std::function<void(size_t, Generation)>& on_done_;
  ParallelDecodeStats& stats_;

  std::vector<llama_seq_id> free_seqs_;  // taken from the back: the lowest first
  size_t free_cells_;                    // KV cells not reserved by the prefix or a running question
  std::vector<std::unique_ptr<Running>> running_;
  size_t next_ = 0;                      // the first request not started yet
  LlamaBatch batch_;
  std::vector<BatchEntry> entries_;      // the next batch, before it is cut to n_batch tokens
};

ParallelDecoder::ParallelDecoder(Session& session, llama_pos prefix_end, size_t prefix_cells,
                                 std::span<const QuestionRequest> requests, int max_parallel,
                                 const std::function<void(size_t, Generation)>& on_done, ParallelDecodeStats& stats)
    : session_(session),
      ctx_(session.context()),
      memory_(llama_get_memory(ctx_)),
      vocab_(session.model().vocab()),
      n_batch_(session.options().n_batch),
      prefix_end_(prefix_end),
      requests_(requests),
      on_done_(on_done),
      stats_(stats),
      batch_(n_batch_, 1) {
  for (llama_seq_id s = max_parallel; s >= 1; --s) free_seqs_.push_back(s);
  const size_t capacity = static_cast<size_t>(session.options().n_ctx);
  free_cells_ = capacity > prefix_cells ? capacity - prefix_cells : 0;
}

void ParallelDecoder::run() {
  while (next_ < requests_.size() || !running_.empty()) {
    throw_if_interrupted();  // the questions still running are dropped; the finished ones were delivered
    entries_.clear();
    queue_pending_tokens();
    admit_waiting();
    stats_.max_running = std::max(stats_.max_running, running_.size());
    decode_batch();
    std::erase_if(running_, [](const std::unique_ptr<Running>& r) { return r->done; });
  }
}

// Every running question's last picked token goes into the next batch.
void ParallelDecoder::queue_pending_tokens() {
  for (const auto& r : running_) {
    if (r->pending == LLAMA_TOKEN_NULL) continue;
    entries_.push_back({r->pending, r->n_past++, r->seq, r.get()});
    r->pending = LLAMA_TOKEN_NULL;
  }
}

// Starts waiting questions, in request order, while a sequence and room for their whole budget are free.
void ParallelDecoder::admit_waiting() {
  while (next_ < requests_.size() && !free_seqs_.empty()) {
    const size_t need = cells_needed(requests_[next_]);
    if (need > free_cells_) {
      if (!running_.empty()) return;  // wait for a running question to end
      throw ModelError("a question needs " + std::to_string(need) + " KV cells after the shared prefix, the context has " +
                       std::to_string(free_cells_));
    }
    const size_t request = next_++;
    if (requests_[request].params.max_new_tokens <= 0) {
      on_done_(request, Generation{});
      continue;
    }
    running_.push_back(start(request, need));
  }
}

// Gives the request a sequence holding the prefix and its reserved cells, and queues its suffix.
std::unique_ptr<Running> ParallelDecoder::start(size_t request, size_t cells) {
  const QuestionRequest& question = requests_[request];
  auto r = std::make_unique<Running>();
  r->request = request;
  r->picker = std::make_unique<TokenPicker>(vocab_, question.params, &session_.allowed_tokens());  // may throw: first
  r->seq = free_seqs_.back();
  free_seqs_.pop_back();
  r->reserved_cells = cells;
  free_cells_ -= cells;
  if (prefix_end_ > 0) llama_memory_seq_cp(memory_, 0, r->seq, -1, -1);
  std::vector<llama_token> tokens;
  if (text_tokens(question.suffix->prompt, tokens) && !tokens.empty()) {
    for (size_t k = 0; k < tokens.size(); ++k) {
      entries_.push_back({tokens[k], prefix_end_ + static_cast<llama_pos>(k), r->seq,
                          k + 1 == tokens.size() ? r.get() : nullptr});
    }
    r->n_past = prefix_end_ + static_cast<llama_pos>(tokens.size());
    stats_.suffix_tokens += tokens.size();
  } else {
    // A suffix with images (no shared prefix) goes through the engine's own chunk evaluation.
    r->n_past = session_.evaluate(*question.suffix, r->seq, prefix_end_, true);
    stats_.suffix_tokens += question.suffix->prompt.token_count();
    accept(*r, pick(*r, -1));
  }
  return r;
}

// Evaluates the queued entries, n_batch at a time, and picks the next token of each question
// whose logits they asked for.
void ParallelDecoder::decode_batch() {
  for (size_t start = 0; start < entries_.size(); start += static_cast<size_t>(n_batch_)) {
    const size_t end = std::min(entries_.size(), start + static_cast<size_t>(n_batch_));
    batch_.clear();
    for (size_t i = start; i < end; ++i) {
      batch_.add(entries_[i].token, entries_[i].pos, entries_[i].seq, entries_[i].sampler_of != nullptr);
    }
    session_.decode_or_throw(batch_.get(), "a batch of questions");
    ++stats_.decode_calls;
    for (size_t i = start; i < end; ++i) {
      if (Running* r = entries_[i].sampler_of) accept(*r, pick(*r, static_cast<int32_t>(i - start)));
    }
  }
}

// Mirrors Session::generate: stop at end of turn, or once the budget is spent (without evaluating the last token).
void ParallelDecoder::accept(Running& r, llama_token token) {
  if (token == LLAMA_TOKEN_NULL) return finish(r, StopReason::kGrammarEnd);
  if (llama_vocab_is_eog(vocab_, token)) return finish(r, StopReason::kEndOfTurn);
  r.picker->accept(token);
  r.generation.tokens.push_back(token);
  if (static_cast<int>(r.generation.tokens.size()) >= requests_[r.request].params.max_new_tokens) {
    return finish(r, StopReason::kTokenBudget);
  }
  r.pending = token;
}

// Delivers the answer and frees its sequence and cells for a waiting question.
void ParallelDecoder::finish(Running& r, StopReason why) {
  r.done = true;
  r.generation.stop = why;
  r.generation.text = session_.detokenize(r.generation.tokens);
  llama_memory_seq_rm(memory_, r.seq, -1, -1);
  free_cells_ += r.reserved_cells;
  free_seqs_.push_back(r.seq);
  stats_.generated_tokens += r.generation.tokens.size();
  stats_.grammar_seconds += r.picker->grammar_seconds();
  on_done_(r.request, std::move(r.generation));
}

}  // namespace

size_t cells_needed(const QuestionRequest& request) {
  return request.suffix->prompt.token_count() + static_cast<size_t>(std::max(0, request.params.max_new_tokens));
}

void decode_parallel(Session& session, llama_pos prefix_end, size_t prefix_cells, std::span<const QuestionRequest> requests,
                     int max_parallel, const std::function<void(size_t, Generation)>& on_done, ParallelDecodeStats* stats) {
  if (max_parallel < 1 || max_parallel >= session.options().n_seq_max) {
    throw ModelError("parallel decoding needs sequences 1.." + std::to_string(max_parallel) + " but the context has " +
                     std::to_string(session.options().n_seq_max));
  }
  ParallelDecodeStats local;
  ParallelDecoder(session, prefix_end, prefix_cells, requests, max_parallel, on_done, stats ? *stats : local).run();
}

}  // namespace drivevqa
