// Decoding many questions at once over one shared prompt prefix (a frame's system turn and images).
//
// Each question gets its own sequence: its prefix's KV cells are shared with it (llama_memory_seq_cp
// on a unified cache, no copy); several prefixes (several frames) can be held at once, each in a
// sequence of its own, and their questions decoded in the same batches; its suffix is evaluated in the same llama_batch as the other
// questions' suffixes and generated tokens, and it picks its tokens with its own TokenPicker (seed,
// sampler and answer grammar: engine/token_picker.h).
//
// A question may want several answers (self-consistency samples): the requests after its first that
// say `forks_previous` form a group with it. The group starts together; its suffix is evaluated once,
// in the first request's sequence, and the others fork it (no copy) and pick their first tokens from
// the same logits, so each further answer costs only its generated tokens.
//
// What must hold:
//   - the same requests, prefix and max_parallel, with the cache cleared before the prefix, give
//     the same answers (its size does not matter: the engine pads what attention reads), greedy
//     or sampled: scheduling is deterministic and each picker sees only its own logits; with
//     several prefixes, where each sits in the cache is part of that too;
//   - across other max_parallel values (other batch shapes, other KV cell placement) the logits can
//     differ in their last bits, so answers are equal only as far as that rounding never flips a
//     token: usually for greedy answers, less often for sampled ones (README "Reproducibility");
//   - an answer with a grammar is one the grammar accepts (cut short only by its token budget);
//   - a question is started only when its suffix and its whole token budget fit in the free KV
//     cells, so decoding never runs out of room (questions that do not fit wait for others to end);
//     a group starts only when all of its answers fit, and needs as many sequences as it has answers;
//   - when decoding fails, no more results are delivered and ModelError is thrown (InputError for
//     a grammar that does not parse); on SIGINT / SIGTERM (util/interrupt.h) Interrupted is thrown
//     between two steps. The questions already delivered stay valid;
//   - requests that join while it runs (MoreRequests: a server's requests that arrive meanwhile)
//     are admitted by the same rules, after every request before them.
#pragma once

#include <functional>
#include <span>
#include <vector>

#include "engine/session.h"

namespace drivevqa {

// Called after each generated token with the answer's text so far (it may end inside a UTF-8
// character); false ends the answer there (StopReason::kStopped). It must not throw.
using TextProgress = std::function<bool(const std::string& text)>;

struct QuestionRequest {
  const EncodedPrompt* suffix = nullptr;  // evaluated after the prefix; may hold images when there is no prefix
  GenerationParams params;
  // Another answer to the previous request's suffix (the same EncodedPrompt): forks its evaluation.
  bool forks_previous = false;
  const TextProgress* on_text = nullptr;  // optional; must outlive decode_parallel (streaming, stop strings)
  size_t prefix = 0;  // which of decode_parallel's prefixes it continues (none given: no prefix)
};

// A prompt prefix already evaluated into a sequence of its own.
struct SharedPrefix {
  llama_seq_id seq = 0;
  llama_pos end = 0;   // it holds positions [0, end)
  size_t cells = 0;    // the KV cells it occupies
};

struct ParallelDecodeStats {
  size_t suffix_tokens = 0;     // prompt tokens evaluated after the shared prefix
  size_t forked_answers = 0;    // answers that forked another's evaluated suffix
  size_t generated_tokens = 0;
  size_t decode_calls = 0;      // llama_decode calls (each a batch over all running questions)
  size_t max_running = 0;       // most questions decoded together
  double grammar_seconds = 0;   // spent checking tokens against answer grammars
};

// KV cells a request needs beyond the prefix: its whole token budget, and its suffix unless it forks
// the previous request's. A group needs the sum over its requests.
size_t cells_needed(const QuestionRequest& request);

// Requests that join a running decode_parallel: called between two steps, whenever every request
// so far has started, and returns the requests to add (none: nothing new). Their on_done indices
// continue after the earlier ones, in the order returned. What they point at must live until
// decode_parallel returns; a batch holds whole groups (its first request does not fork) and names
// only prefixes the call holds. What it throws ends decode_parallel, as a decoding failure does.
using MoreRequests = std::function<std::vector<QuestionRequest>()>;

// Answers `requests`, at most `max_parallel` at a time, over a prefix that occupies
// `prefix_cells` KV cells and positions [0, prefix_end) of sequence 0 of `session` (both 0: no
// prefix). Uses sequences 1..max_parallel, which must be below the session's n_seq_max; a group larger
// than max_parallel is a ModelError, and so is a first request that forks (there is nothing to fork).
// `on_done(i, generation)` is called as soon as request i finishes, in finishing order.
void decode_parallel(Session& session, llama_pos prefix_end, size_t prefix_cells, std::span<const QuestionRequest> requests,
                     int max_parallel, const std::function<void(size_t, Generation)>& on_done,
                     ParallelDecodeStats* stats = nullptr);

// The same over every prefix the session holds (`prefixes`: their cells are not free; a request
// continues prefixes[request.prefix]), with the questions in sequences first_seq ..
// first_seq + max_parallel - 1, which must hold nothing and be below the session's n_seq_max;
// `more` (optional) adds requests while it runs.
void decode_parallel(Session& session, std::span<const SharedPrefix> prefixes, std::span<const QuestionRequest> requests,
                     int max_parallel, llama_seq_id first_seq, const std::function<void(size_t, Generation)>& on_done,
                     ParallelDecodeStats* stats = nullptr, const MoreRequests* more = nullptr);

}  // namespace drivevqa
