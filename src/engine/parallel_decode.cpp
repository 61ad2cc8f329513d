#include "engine/parallel_decode.h"

#include <algorithm>
#include <deque>
#include <memory>
#include <utility>
#include <vector>

#include "util/error.h"
#include "util/interrupt.h"

namespace drivevqa {
namespace {

// The answers to one question: the suffix's KV cells are theirs together, freed with the last one.
struct Group {
  size_t suffix_cells = 0;
  size_t live = 0;  // members not finished
};

// One answer being decoded in its own sequence.
struct Running {
  size_t request = 0;
  llama_seq_id seq = 0;
  llama_pos n_past = 0;       // position of the next token to evaluate
  size_t reserved_cells = 0;  // for its generated tokens (the suffix's are the group's)
  std::shared_ptr<Group> group;
  std::vector<Running*> forks;  // group members waiting for this one's suffix to be evaluated
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
  ParallelDecoder(Session& session, std::span<const SharedPrefix> prefixes, std::span<const QuestionRequest> requests,
                  int max_parallel, llama_seq_id first_seq, const std::function<void(size_t, Generation)>& on_done,
                  ParallelDecodeStats& stats, const MoreRequests* more);
  // Until every request is delivered; as decode_parallel.
  void run();

 private:
  void queue_pending_tokens();
  void take_more();
  void admit_waiting();
  size_t group_end(size_t first) const;
  void start_group(size_t first, size_t end);
  std::unique_ptr<Running> start(size_t request, const std::shared_ptr<Group>& group);
  void evaluate_suffix(Running& r);
  void fork_suffix(Running& from, Running& fork, int32_t batch_index);
  void decode_batch();
  void accept(Running& r, llama_token token);
  void finish(Running& r, StopReason why);
  llama_token pick(Running& r, int32_t batch_index) { return r.picker->pick(ctx_, batch_index); }
  // Where request `i`'s prefix ends (0: it has none).
  llama_pos prefix_end(size_t i) const { return prefixes_.empty() ? 0 : prefixes_[requests_[i].prefix].end; }

  Session& session_;
  llama_context* ctx_;
  llama_memory_t memory_;
  const llama_vocab* vocab_;
  const int n_batch_;
  const size_t max_parallel_;
  const std::span<const SharedPrefix> prefixes_;
  std::deque<QuestionRequest> requests_;  // those given, then those that joined (indices stay put)
  const std::function<void(size_t, Generation)>& on_done_;
  ParallelDecodeStats& stats_;
  const MoreRequests* more_;

  std::vector<llama_seq_id> free_seqs_;  // taken from the back: the lowest first
  size_t free_cells_;                    // KV cells not reserved by the prefix or a running question
  std::vector<std::unique_ptr<Running>> running_;
  size_t next_ = 0;                      // the first request not started yet
  LlamaBatch batch_;
  std::vector<BatchEntry> entries_;      // the next batch, before it is cut to n_batch tokens
};

ParallelDecoder::ParallelDecoder(Session& session, std::span<const SharedPrefix> prefixes,
                                 std::span<const QuestionRequest> requests, int max_parallel, llama_seq_id first_seq,
                                 const std::function<void(size_t, Generation)>& on_done, ParallelDecodeStats& stats,
                                 const MoreRequests* more)
    : session_(session),
      ctx_(session.context()),
      memory_(llama_get_memory(ctx_)),
      vocab_(session.model().vocab()),
      n_batch_(session.options().n_batch),
      max_parallel_(static_cast<size_t>(max_parallel)),
      prefixes_(prefixes),
      requests_(requests.begin(), requests.end()),
      on_done_(on_done),
      stats_(stats),
      more_(more),
      batch_(n_batch_, 1) {
  for (llama_seq_id s = first_seq + max_parallel - 1; s >= first_seq; --s) free_seqs_.push_back(s);
  size_t prefix_cells = 0;
  for (const SharedPrefix& p : prefixes) prefix_cells += p.cells;
  const size_t capacity = static_cast<size_t>(session.options().n_ctx);
  free_cells_ = capacity > prefix_cells ? capacity - prefix_cells : 0;
}

void ParallelDecoder::run() {
  for (;;) {
    throw_if_interrupted();  // the questions still running are dropped; the finished ones were delivered
    if (next_ == requests_.size()) take_more();
    if (next_ == requests_.size() && running_.empty()) return;
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

// Requests that join now (MoreRequests), checked as decode_parallel checks those it is given.
void ParallelDecoder::take_more() {
  if (!more_) return;
  std::vector<QuestionRequest> added = (*more_)();
  if (added.empty()) return;
  if (added.front().forks_previous) throw ModelError("a joining batch of requests starts with a fork");
  for (const QuestionRequest& r : added) {
    if (!prefixes_.empty() && r.prefix >= prefixes_.size()) throw ModelError("a joining question names a prefix that is not held");
  }
  requests_.insert(requests_.end(), added.begin(), added.end());
}

// Starts waiting questions, in request order, while sequences and room for their whole budgets are free.
void ParallelDecoder::admit_waiting() {
  while (next_ < requests_.size()) {
    const size_t end = group_end(next_);
    if (end - next_ > max_parallel_) {
      throw ModelError("a question with " + std::to_string(end - next_) + " answers needs as many sequences, decoding has " +
                       std::to_string(max_parallel_));
    }
    size_t need = 0;
    for (size_t i = next_; i < end; ++i) need += cells_needed(requests_[i]);
    if (end - next_ > free_seqs_.size() || need > free_cells_) {
      if (!running_.empty()) return;  // wait for a running question to end
      throw ModelError("a question needs " + std::to_string(need) + " KV cells after the shared prefix, the context has " +
                       std::to_string(free_cells_));
    }
    const size_t first = next_;
    next_ = end;
    if (requests_[first].params.max_new_tokens <= 0) {
      for (size_t i = first; i < end; ++i) on_done_(i, Generation{});
      continue;
    }
    start_group(first, end);
  }
}

// The end of the group that starts at `first`: the requests after it that fork it.
size_t ParallelDecoder::group_end(size_t first) const {
  if (requests_[first].forks_previous) throw ModelError("the first answer of a question cannot fork another's");
  size_t end = first + 1;
  while (end < requests_.size() && requests_[end].forks_previous) ++end;
  return end;
}

// Gives every answer of the group a sequence holding the prefix and its reserved cells, and
// evaluates (or queues) the suffix once, in the first answer's sequence.
void ParallelDecoder::start_group(size_t first, size_t end) {
  auto group = std::make_shared<Group>(Group{requests_[first].suffix->prompt.token_count(), end - first});
  free_cells_ -= group->suffix_cells;
  std::vector<std::unique_ptr<Running>> members;
  for (size_t i = first; i < end; ++i) members.push_back(start(i, group));
  for (size_t i = 1; i < members.size(); ++i) members.front()->forks.push_back(members[i].get());
  evaluate_suffix(*members.front());
  for (auto& m : members) running_.push_back(std::move(m));
}

std::unique_ptr<Running> ParallelDecoder::start(size_t request, const std::shared_ptr<Group>& group) {
  const QuestionRequest& question = requests_[request];
  auto r = std::make_unique<Running>();
  r->request = request;
  r->group = group;
  r->picker = std::make_unique<TokenPicker>(vocab_, question.params, &session_.allowed_tokens());  // may throw: first
  r->seq = free_seqs_.back();
  free_seqs_.pop_back();
  r->reserved_cells = static_cast<size_t>(std::max(0, question.params.max_new_tokens));
  free_cells_ -= r->reserved_cells;
  if (prefix_end(request) > 0) llama_memory_seq_cp(memory_, prefixes_[question.prefix].seq, r->seq, -1, -1);
  return r;
}

// Queues the suffix's tokens (the last one asks for logits), or evaluates a suffix with images
// right away; the group's forks follow once its logits are there.
void ParallelDecoder::evaluate_suffix(Running& r) {
  const QuestionRequest& question = requests_[r.request];
  const llama_pos start = prefix_end(r.request);
  std::vector<llama_token> tokens;
  if (text_tokens(question.suffix->prompt, tokens) && !tokens.empty()) {
    for (size_t k = 0; k < tokens.size(); ++k) {
      entries_.push_back({tokens[k], start + static_cast<llama_pos>(k), r.seq, k + 1 == tokens.size() ? &r : nullptr});
    }
    r.n_past = start + static_cast<llama_pos>(tokens.size());
    stats_.suffix_tokens += tokens.size();
    return;
  }
  // A suffix with images (close-ups, or no shared prefix) goes through the engine's own chunk evaluation.
  r.n_past = session_.evaluate(*question.suffix, r.seq, start, true);
  stats_.suffix_tokens += question.suffix->prompt.token_count();
  for (Running* fork : std::exchange(r.forks, {})) fork_suffix(r, *fork, -1);
  accept(r, pick(r, -1));
}

// `fork` shares `from`'s evaluated suffix (before `from` generates anything) and picks its first
// token from the same logits.
void ParallelDecoder::fork_suffix(Running& from, Running& fork, int32_t batch_index) {
  llama_memory_seq_cp(memory_, from.seq, fork.seq, prefix_end(from.request), from.n_past);
  fork.n_past = from.n_past;
  ++stats_.forked_answers;
  accept(fork, pick(fork, batch_index));
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
      Running* r = entries_[i].sampler_of;
      if (!r) continue;
      const auto row = static_cast<int32_t>(i - start);
      for (Running* fork : std::exchange(r->forks, {})) fork_suffix(*r, *fork, row);  // before r can finish
      accept(*r, pick(*r, row));
    }
  }
}

// Mirrors Session::generate: stop at end of turn, or once the budget is spent (without evaluating the last token).
void ParallelDecoder::accept(Running& r, llama_token token) {
  if (token == LLAMA_TOKEN_NULL) return finish(r, StopReason::kGrammarEnd);
  if (llama_vocab_is_eog(vocab_, token)) return finish(r, StopReason::kEndOfTurn);
  r.picker->accept(token);
  r.generation.tokens.push_back(token);
  if (const TextProgress* on_text = requests_[r.request].on_text; on_text && !(*on_text)(session_.detokenize(r.generation.tokens))) {
    return finish(r, StopReason::kStopped);
  }
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
  if (--r.group->live == 0) free_cells_ += r.group->suffix_cells;
  free_seqs_.push_back(r.seq);
  stats_.generated_tokens += r.generation.tokens.size();
  stats_.grammar_seconds += r.picker->grammar_seconds();
  on_done_(r.request, std::move(r.generation));
}

}  // namespace

size_t cells_needed(const QuestionRequest& request) {
  const size_t suffix = request.forks_previous ? 0 : request.suffix->prompt.token_count();
  return suffix + static_cast<size_t>(std::max(0, request.params.max_new_tokens));
}

void decode_parallel(Session& session, std::span<const SharedPrefix> prefixes, std::span<const QuestionRequest> requests,
                     int max_parallel, llama_seq_id first_seq, const std::function<void(size_t, Generation)>& on_done,
                     ParallelDecodeStats* stats, const MoreRequests* more) {
  if (max_parallel < 1 || first_seq < 0 || first_seq + max_parallel > session.options().n_seq_max) {
    throw ModelError("parallel decoding needs sequences " + std::to_string(first_seq) + ".." +
                     std::to_string(first_seq + max_parallel - 1) + " but the context has " +
                     std::to_string(session.options().n_seq_max));
  }
  for (const QuestionRequest& r : requests) {
    if (!prefixes.empty() && r.prefix >= prefixes.size()) throw ModelError("a question names a prefix that is not held");
  }
  for (const SharedPrefix& p : prefixes) {
    if (p.seq >= first_seq && p.seq < first_seq + max_parallel) throw ModelError("a prefix sits in a question's sequence");
  }
  ParallelDecodeStats local;
  ParallelDecoder(session, prefixes, requests, max_parallel, first_seq, on_done, stats ? *stats : local, more).run();
}

void decode_parallel(Session& session, llama_pos prefix_end, size_t prefix_cells, std::span<const QuestionRequest> requests,
                     int max_parallel, const std::function<void(size_t, Generation)>& on_done, ParallelDecodeStats* stats) {
  const SharedPrefix prefix{0, prefix_end, prefix_cells};
  decode_parallel(session, prefix_end > 0 ? std::span(&prefix, 1) : std::span<const SharedPrefix>(), requests, max_parallel, 1,
                  on_done, stats);
}

}  // namespace drivevqa
