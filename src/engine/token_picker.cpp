#include "engine/token_picker.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/session.h"
#include "util/error.h"
#include "util/stopwatch.h"

namespace drivevqa {
namespace {

// Tokens whose grammar check is tried before the whole vocabulary is filtered: the grammar usually
// allows one of the few most likely tokens, and checking all ~150k costs milliseconds.
constexpr size_t kFirstProbe = 64;
// Allowed sets up to this size are remembered; larger ones mean the grammar allows most text, and
// the first probe nearly always finds an allowed token.
constexpr size_t kRememberedSetSize = 4096;
constexpr size_t kRememberedStates = 4096;

llama_token argmax(const float* logits, int32_t n) {
  return static_cast<llama_token>(std::max_element(logits, logits + n) - logits);
}

}  // namespace

const std::vector<llama_token>* AllowedTokenCache::find(const std::string& state) const {
  const auto it = sets_.find(state);
  return it == sets_.end() ? nullptr : &it->second;
}

void AllowedTokenCache::remember(const std::string& state, std::vector<llama_token> allowed) {
  if (allowed.size() > kRememberedSetSize) return;
  if (sets_.size() >= kRememberedStates) sets_.clear();  // bounded; a run needs only a few states
  sets_.emplace(state, std::move(allowed));
}

TokenPicker::TokenPicker(const llama_vocab* vocab, const GenerationParams& params, AllowedTokenCache* cache)
    : vocab_(vocab), n_vocab_(llama_vocab_n_tokens(vocab)), do_sample_(params.do_sample), top_k_(params.top_k),
      cache_(cache), state_(params.grammar) {
  if (!params.grammar.empty()) {
    const auto t0 = std::chrono::steady_clock::now();
    grammar_.reset(llama_sampler_init_grammar(vocab, params.grammar.c_str(), "root"));
    if (!grammar_) throw InputError("the answer grammar is not valid GBNF:\n" + params.grammar);
    grammar_seconds_ += seconds_since(t0);
  }
  if (do_sample_) {
    GenerationParams chain = params;
    if (grammar_) chain.top_k = 0;  // best_allowed() already keeps the top k allowed tokens
    chain_ = make_sampler(chain);
  }
}

llama_token TokenPicker::pick(llama_context* ctx, int32_t index) {
  if (!grammar_ && do_sample_) return llama_sampler_sample(chain_.get(), ctx, index);
  const float* logits = llama_get_logits_ith(ctx, index);
  if (!logits) throw ModelError("the engine returned no logits for an answer");
  if (!grammar_) return argmax(logits, n_vocab_);
  if (!do_sample_) {
    // Most steps: the best token is allowed, and one check settles it.
    std::vector<llama_token_data> best = {{argmax(logits, n_vocab_), 0.0f, 0.0f}};
    best[0].logit = logits[best[0].id];
    keep_allowed(best);
    if (!best.empty()) return best[0].id;
  }
  const size_t k = do_sample_ && top_k_ > 0 ? static_cast<size_t>(top_k_) : do_sample_ ? n_vocab_ : 1;
  std::vector<llama_token_data> allowed = best_allowed(logits, k);
  if (allowed.empty()) return LLAMA_TOKEN_NULL;
  if (!do_sample_) return allowed.front().id;
  llama_token_data_array array{allowed.data(), allowed.size(), -1, /*sorted=*/true};
  llama_sampler_apply(chain_.get(), &array);
  if (array.selected < 0 || static_cast<size_t>(array.selected) >= array.size) {
    throw ModelError("the sampler chose no token");
  }
  return array.data[array.selected].id;
}

void TokenPicker::accept(llama_token token) {
  if (!grammar_) return;
  const auto t0 = std::chrono::steady_clock::now();
  llama_sampler_accept(grammar_.get(), token);
  state_.append(reinterpret_cast<const char*>(&token), sizeof token);
  grammar_seconds_ += seconds_since(t0);
}

void TokenPicker::keep_allowed(std::vector<llama_token_data>& candidates) {
  const auto t0 = std::chrono::steady_clock::now();
  llama_token_data_array array{candidates.data(), candidates.size(), -1, false};
  llama_sampler_apply(grammar_.get(), &array);  // sets the rejected ones to -inf, in place
  std::erase_if(candidates, [](const llama_token_data& t) { return !std::isfinite(t.logit); });
  grammar_seconds_ += seconds_since(t0);
}

std::vector<llama_token_data> TokenPicker::best_allowed(const float* logits, size_t k) {
  const auto better = [logits](llama_token a, llama_token b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  const auto as_data = [logits](auto begin, auto end) {
    std::vector<llama_token_data> out;
    out.reserve(static_cast<size_t>(end - begin));
    for (auto it = begin; it != end; ++it) out.push_back({*it, logits[*it], 0.0f});
    return out;
  };
  const auto by_rank = [&](const llama_token_data& a, const llama_token_data& b) { return better(a.id, b.id); };
  std::vector<llama_token_data> allowed;
  if (const std::vector<llama_token>* known = cache_ ? cache_->find(state_) : nullptr) {
    const auto t0 = std::chrono::steady_clock::now();
    allowed = as_data(known->begin(), known->end());
    std::sort(allowed.begin(), allowed.end(), by_rank);
    grammar_seconds_ += seconds_since(t0);
  } else {
    std::vector<llama_token> order(static_cast<size_t>(n_vocab_));
    std::iota(order.begin(), order.end(), 0);
    const size_t probe = std::min(order.size(), std::max(kFirstProbe, 4 * k));
    const auto probe_end = order.begin() + static_cast<std::ptrdiff_t>(probe);
    std::partial_sort(order.begin(), probe_end, order.end(), better);
    allowed = as_data(order.begin(), probe_end);
    keep_allowed(allowed);
    if (allowed.size() < k && probe < order.size()) {
      // The grammar allows few of the likely tokens: filter the rest at once, then order it.
      std::vector<llama_token_data> rest = as_data(probe_end, order.end());
      keep_allowed(rest);
      std::sort(rest.begin(), rest.end(), by_rank);
      allowed.insert(allowed.end(), rest.begin(), rest.end());
      if (cache_) {
        std::vector<llama_token> ids;
        for (const llama_token_data& t : allowed) ids.push_back(t.id);
        cache_->remember(state_, std::move(ids));
      }
    }
  }
  if (allowed.size() > k) allowed.resize(k);
  return allowed;
}

}  // namespace drivevqa
