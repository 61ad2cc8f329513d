// Choosing the tokens of one answer: greedy or sampled, optionally held to a GBNF grammar.
//
// What must hold:
//   - greedy picks the largest logit (the lowest token id among equals); under a grammar, the
//     largest logit among the tokens the grammar allows at this point;
//   - sampling draws from top-k, then top-p, then temperature, then the seeded distribution; under
//     a grammar the same chain runs over the allowed tokens only (the grammar filters first), so
//     every answer is one the grammar accepts;
//   - the choice depends only on the logits, the tokens accepted so far and the seed, never on
//     other answers decoded beside it.
// One picker per answer; it is not thread-safe. The vocabulary must outlive it.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "engine/handles.h"

namespace drivevqa {

struct GenerationParams;

// The tokens a grammar allows after a given sequence of accepted tokens, remembered when they are
// few (an option letter, the "Yes"/"No" that opens an answer): finding them means checking the
// whole vocabulary, and the questions of a run share a handful of grammar states.
class AllowedTokenCache {
 public:
  const std::vector<llama_token>* find(const std::string& state) const;
  void remember(const std::string& state, std::vector<llama_token> allowed);

 private:
  std::unordered_map<std::string, std::vector<llama_token>> sets_;
};

class TokenPicker {
 public:
  // Throws InputError when params.grammar is not valid GBNF. `cache` (may be null) must outlive
  // the picker; it may be shared by the pickers of one vocabulary, one thread at a time.
  TokenPicker(const llama_vocab* vocab, const GenerationParams& params, AllowedTokenCache* cache = nullptr);

  // The next token from the logits of batch row `index` of `ctx` (-1: the last row);
  // LLAMA_TOKEN_NULL when the grammar allows no token at all. Throws ModelError without logits.
  llama_token pick(llama_context* ctx, int32_t index);

  // Records a picked token that is part of the answer (not an end-of-generation token).
  void accept(llama_token token);

  // Time spent in grammar checks so far (what the answer shape costs).
  double grammar_seconds() const { return grammar_seconds_; }

 private:
  // The k best tokens the grammar allows, best first.
  std::vector<llama_token_data> best_allowed(const float* logits, size_t k);
  // Drops the tokens of `candidates` the grammar rejects, keeping their order.
  void keep_allowed(std::vector<llama_token_data>& candidates);

  const llama_vocab* vocab_;
  int32_t n_vocab_;
  bool do_sample_;
  int top_k_;
  LlamaSamplerPtr chain_;    // sampling only; without top-k when a grammar filters first
  LlamaSamplerPtr grammar_;  // null: unconstrained
  AllowedTokenCache* cache_;
  std::string state_;        // the grammar and the tokens accepted so far: the cache key
  double grammar_seconds_ = 0;
};

}  // namespace drivevqa
