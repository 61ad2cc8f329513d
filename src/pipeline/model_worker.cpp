#include "pipeline/model_worker.h"

#include <algorithm>
#include <chrono>

#include "prompt/chat_prompt.h"
#include "util/stopwatch.h"

namespace drivevqa {
namespace {

// Two frames' worth of cameras, and with close-ups a frame's worth of objects (c1..c6 in two cameras).
constexpr size_t kCachedEmbeddings = 12;
constexpr size_t kCachedCloseUps = 12;
// With markers, a frame's marked copies of its cameras: a marked camera shared by two marker sets
// (c1 alone, c1 and c2) is encoded once, and the frame's unmarked cameras stay while they pass.
constexpr size_t kCachedMarkedImages = 6;
// llama.cpp's limit is 256 sequences; sequence 0 holds the prefix.
constexpr int kMaxParallel = 255;

// Where the shared prefix ends: after the frame's last image marker (close-ups follow it), when
// every question starts with the same text up to there.
size_t shared_prefix_length(const std::vector<FrameQuestion>& questions, size_t frame_images) {
  const std::string& first = questions.front().text;
  size_t cut = 0;
  for (size_t i = 0; i < frame_images; ++i) {
    const size_t marker = first.find(kImageMarker, cut);
    if (marker == std::string::npos) return 0;
    cut = marker + kImageMarker.size();
  }
  for (const FrameQuestion& q : questions) {
    if (q.text.size() < cut || q.text.compare(0, cut, first, 0, cut) != 0) return 0;
  }
  return cut;
}

// KV cells for the prefix and the `parallel` largest questions (each with all of its answers), within
// max_context, but never fewer than the prefix and the largest question: a frame that does not fit
// goes in waves.
size_t context_cells(std::span<const QuestionRequest> requests, size_t prefix_cells, int parallel, int max_context) {
  std::vector<size_t> needs;
  for (const QuestionRequest& request : requests) {
    if (request.forks_previous) {
      needs.back() += cells_needed(request);
    } else {
      needs.push_back(cells_needed(request));
    }
  }
  std::sort(needs.begin(), needs.end(), std::greater<>());
  size_t want = prefix_cells;
  for (size_t i = 0; i < needs.size() && i < static_cast<size_t>(parallel); ++i) want += needs[i];
  return std::max(prefix_cells + needs.front(), std::min(want, static_cast<size_t>(max_context)));
}

// What one decode_parallel call did, added to the run's counters (its time since `t0`).
void count_decoding(const ParallelDecodeStats& stats, std::chrono::steady_clock::time_point t0, RunCounters& counters) {
  counters.forked_answers += stats.forked_answers;
  counters.suffix_tokens += stats.suffix_tokens;
  counters.generated_tokens += stats.generated_tokens;
  counters.max_parallel = std::max(counters.max_parallel, stats.max_running);
  counters.decode_calls += stats.decode_calls;
  counters.seconds.questions += seconds_since(t0);
  counters.seconds.grammar += stats.grammar_seconds;
}

}  // namespace

EngineOptions with_frame_plan(EngineOptions engine, const FrameOptions& options) {
  engine.planned_context = (options.max_context + 255) / 256 * 256;
  const bool capped = options.parallel > 0 && !options.sample_groups;
  engine.planned_sequences = std::min(capped ? options.parallel : kMaxParallel, kMaxParallel) + 1;
  // answer_frames: its held prefixes' sequences, then the questions' (the engine allows 256).
  if (options.whole_context) engine.planned_sequences = std::min(engine.planned_sequences - 1 + ModelWorker::kHeldPrefixes, kMaxParallel + 1);
  engine.planned_kv_type = options.kv_type;
  return engine;
}

ModelWorker::ModelWorker(std::unique_ptr<Model> model, const FrameOptions& options, RunCounters& counters)
    : model_(std::move(model)),
      options_(options),
      counters_(counters),
      embeddings_(options.reuse ? kCachedEmbeddings + options.history_images + (options.close_ups ? kCachedCloseUps : 0) +
                                      (options.marked_images ? kCachedMarkedImages : 0)
                                : 0) {}

ModelWorker::~ModelWorker() = default;

void ModelWorker::ensure_session(size_t cells, int sequences) {
  if (options_.whole_context) {
    cells = std::max(cells, static_cast<size_t>(options_.max_context));
    sequences = std::max(sequences, with_frame_plan(model_->options(), options_).planned_sequences);
  }
  if (session_ && static_cast<size_t>(session_->options().n_ctx) >= cells && session_->options().n_seq_max >= sequences) return;
  SessionOptions o;
  o.kv_type = options_.kv_type;
  o.flash_attention = text_flash_attention(model_->options());
  o.flash_when_alone = flash_when_alone(model_->options(), o.kv_type);
  const size_t keep = session_ ? static_cast<size_t>(session_->options().n_ctx) : 0;
  o.n_ctx = static_cast<int>((std::max(cells, keep) + 255) / 256 * 256);
  o.n_seq_max = std::max(sequences, session_ ? session_->options().n_seq_max : 1);
  session_.reset();  // free the old cache before allocating the new one
  prefix_in_session_ = false;
  held_.clear();
  session_ = std::make_unique<Session>(*model_, o);
}

void ModelWorker::answer_frame(const std::vector<FrameQuestion>& questions, const std::vector<const RgbImage*>& images,
                               const std::string& image_key, const AnswersDone& on_done) {
  if (questions.empty()) return;
  ++counters_.frames;
  const bool shared = options_.reuse && options_.layout == PromptLayout::kShared;
  const size_t cut = shared ? shared_prefix_length(questions, images.size()) : 0;
  // Sampled groups are decoded in batches the frame alone sets (see the header).
  const bool groups = std::any_of(questions.begin(), questions.end(), [](const FrameQuestion& q) { return q.answers.size() > 1; });
  const int parallel = std::min({options_.parallel > 0 && !groups ? options_.parallel : kMaxParallel, kMaxParallel,
                                 static_cast<int>(questions.size())});
  try {
    encode_prefix(questions.front().text.substr(0, cut), images, image_key);
    // With a prefix, the suffixes are short text and all are prepared at once; without one each
    // holds its images' embeddings, so only `parallel` of them are prepared at a time.
    const size_t wave = cut ? questions.size() : static_cast<size_t>(parallel);
    for (size_t begin = 0; begin < questions.size(); begin += wave) {
      const size_t end = std::min(questions.size(), begin + wave);
      answer_wave(std::span(questions).subspan(begin, end - begin), cut, images, parallel,
                  [&](size_t i, std::vector<Generation> answers) { on_done(begin + i, std::move(answers)); });
    }
  } catch (...) {
    // The context may hold half-evaluated sequences: nothing of it is trusted again.
    if (session_) session_->clear();
    held_.clear();
    prefix_in_session_ = false;
    throw;
  }
}

void ModelWorker::encode_prefix(const std::string& text, const std::vector<const RgbImage*>& images,
                                const std::string& image_key) {
  const auto t0 = std::chrono::steady_clock::now();
  const size_t encodes_before = embeddings_.encodes();
  if (text.empty()) {
    prefix_key_.clear();
    prefix_.reset();
  } else if (const std::string key = text + '\0' + image_key; key != prefix_key_) {
    prefix_ = std::make_unique<EncodedPrompt>(encode(*model_, tokenize(*model_, text, images), &embeddings_));
    prefix_key_ = key;
    prefix_in_session_ = false;
  }
  counters_.images_encoded += embeddings_.encodes() - encodes_before;
  counters_.seconds.encode_images += seconds_since(t0);
}

void ModelWorker::answer_wave(std::span<const FrameQuestion> wave, size_t cut, const std::vector<const RgbImage*>& images,
                              int parallel, const AnswersDone& on_done) {
  auto t0 = std::chrono::steady_clock::now();
  const size_t encodes_before = embeddings_.encodes();
  std::vector<EncodedPrompt> suffixes;
  suffixes.reserve(wave.size());
  for (const FrameQuestion& q : wave) {
    // After a prefix a suffix holds only its close-ups; without one, the frame's images too.
    std::vector<const RgbImage*> suffix_images = cut ? std::vector<const RgbImage*>() : images;
    suffix_images.insert(suffix_images.end(), q.close_ups.begin(), q.close_ups.end());
    suffixes.push_back(encode(*model_, tokenize(*model_, q.text.substr(cut), suffix_images, cut == 0), &embeddings_));
    counters_.close_up_tokens += suffixes.back().prompt.image_token_count(cut ? 0 : images.size());
  }
  // One request per answer; a question's further answers fork its first.
  std::vector<QuestionRequest> requests;
  std::vector<std::pair<size_t, size_t>> answer_of;  // request -> (question, answer)
  size_t largest_group = 1;
  for (size_t i = 0; i < wave.size(); ++i) {
    for (size_t k = 0; k < wave[i].answers.size(); ++k) {
      const TextProgress* on_text = k == 0 && wave[i].on_text ? &wave[i].on_text : nullptr;
      requests.push_back({&suffixes[i], wave[i].answers[k], k > 0, on_text});
      answer_of.emplace_back(i, k);
    }
    largest_group = std::max(largest_group, wave[i].answers.size());
  }
  counters_.images_encoded += embeddings_.encodes() - encodes_before;
  counters_.seconds.encode_images += seconds_since(t0);

  const size_t prefix_cells = cut ? prefix_->prompt.token_count() : 0;
  const int sequences = static_cast<int>(std::min<size_t>(kMaxParallel, static_cast<size_t>(parallel) * largest_group));
  ensure_session(context_cells(requests, prefix_cells, parallel, options_.max_context), sequences + 1);
  const size_t cached_cells = place_prefix(cut > 0, prefix_cells) ? prefix_cells : 0;
  t0 = std::chrono::steady_clock::now();
  std::vector<std::vector<Generation>> answers(wave.size());
  std::vector<size_t> missing(wave.size());
  for (size_t i = 0; i < wave.size(); ++i) {
    answers[i].resize(wave[i].answers.size());
    missing[i] = wave[i].answers.size();
  }
  const auto answered = [&](size_t request, Generation g) {
    const auto [question, k] = answer_of[request];
    g.prompt_tokens = prefix_cells + suffixes[question].prompt.token_count();
    g.cached_prompt_tokens = cached_cells;
    answers[question][k] = std::move(g);
    if (--missing[question] == 0) on_done(question, std::move(answers[question]));
  };
  ParallelDecodeStats stats;
  decode_parallel(*session_, prefix_end_, prefix_cells, requests, sequences, answered, &stats);
  count_decoding(stats, t0, counters_);
}

bool ModelWorker::place_prefix(bool has_prefix, size_t prefix_cells) {
  if (!has_prefix) {
    session_->clear();
    held_.clear();
    prefix_end_ = 0;
    return false;
  }
  if (prefix_in_session_) return true;
  const auto t0 = std::chrono::steady_clock::now();
  session_->clear();
  held_.clear();
  prefix_end_ = session_->evaluate_alone(*prefix_, 0, 0);
  prefix_in_session_ = true;
  ++counters_.prefix_evaluations;
  counters_.prefix_tokens += prefix_cells;
  counters_.seconds.prefixes += seconds_since(t0);
  return false;
}

// Per frame of an answer_frames call: its work, and its answers while they come in.
struct ModelWorker::FrameState {
  const FrameWork* frame = nullptr;
  size_t cut = 0;                         // where the shared prefix ends in its questions' text
  std::string key;                        // its prefix's key (text + image key)
  std::unique_ptr<EncodedPrompt> prefix;  // encoded when it was not held
  size_t prefix_cells = 0;
  size_t cached_cells = 0;                // the prefix's, when it was held before its questions began
  std::vector<EncodedPrompt> suffixes;    // per question
  size_t largest_need = 0;                // its largest question's cells, all answers
  std::vector<std::vector<Generation>> answers;  // per question
  std::vector<size_t> missing;                   // per question: answers not in yet
};

std::vector<ModelWorker::HeldPrefix>::iterator ModelWorker::held_at(const std::string& key) {
  return std::find_if(held_.begin(), held_.end(), [&](const HeldPrefix& h) { return h.key == key; });
}

bool ModelWorker::find_frame_prefix(FrameState& state) const {
  const bool shared = options_.reuse && options_.layout == PromptLayout::kShared && options_.whole_context;
  const FrameWork& frame = *state.frame;
  state.cut = shared ? shared_prefix_length(*frame.questions, frame.images->size()) : 0;
  if (state.cut == 0) return false;
  state.key = frame.questions->front().text.substr(0, state.cut) + '\0' + frame.image_key;
  return true;
}

void ModelWorker::encode_frame(FrameState& state) {
  const auto t0 = std::chrono::steady_clock::now();
  const size_t encodes_before = embeddings_.encodes();
  const std::vector<FrameQuestion>& questions = *state.frame->questions;
  if (const auto held = held_at(state.key); held == held_.end()) {
    const std::string text = questions.front().text.substr(0, state.cut);
    state.prefix = std::make_unique<EncodedPrompt>(encode(*model_, tokenize(*model_, text, *state.frame->images), &embeddings_));
    state.prefix_cells = state.prefix->prompt.token_count();
  } else {
    state.prefix_cells = held->where.cells;
  }
  for (const FrameQuestion& q : questions) {
    state.suffixes.push_back(encode(*model_, tokenize(*model_, q.text.substr(state.cut), q.close_ups, false), &embeddings_));
    counters_.close_up_tokens += state.suffixes.back().prompt.image_token_count(0);
    size_t need = 0;
    for (size_t k = 0; k < q.answers.size(); ++k) need += cells_needed({&state.suffixes.back(), q.answers[k], k > 0});
    state.largest_need = std::max(state.largest_need, need);
  }
  counters_.images_encoded += embeddings_.encodes() - encodes_before;
  counters_.seconds.encode_images += seconds_since(t0);
}

void ModelWorker::answer_frames(std::span<const FrameWork> frames, const FramesAnswersDone& on_done, const LateFrames* late) {
  std::deque<FrameState> work(frames.size());  // frames that join are appended
  std::vector<size_t> together, alone;
  try {
    for (size_t f = 0; f < frames.size(); ++f) {
      work[f].frame = &frames[f];
      if (frames[f].questions->empty()) continue;
      (find_frame_prefix(work[f]) ? together : alone).push_back(f);
    }
    if (!together.empty()) {
      ensure_session(static_cast<size_t>(options_.max_context), 0);  // the whole context (whole_context)
      if (prefix_in_session_) {  // answer_frame's prefix in sequence 0: held_ takes the sequences over
        session_->clear();
        prefix_in_session_ = false;
      }
      for (const size_t f : together) encode_frame(work[f]);

      // Groups of frames whose prefixes and largest question fit together; a frame that does not
      // fit even alone goes through answer_frame (in waves).
      const size_t capacity = static_cast<size_t>(session_->options().n_ctx);
      std::vector<std::vector<size_t>> groups(1);
      size_t group_cells = 0, group_need = 0;
      for (const size_t f : together) {
        const size_t cells = work[f].prefix_cells, need = work[f].largest_need;
        if (cells + need > capacity) {
          alone.push_back(f);
          continue;
        }
        std::vector<size_t>& group = groups.back();
        if (!group.empty() &&
            (group.size() == static_cast<size_t>(kHeldPrefixes) || group_cells + cells + std::max(group_need, need) > capacity)) {
          groups.emplace_back();
          group_cells = group_need = 0;
        }
        groups.back().push_back(f);
        group_cells += cells;
        group_need = std::max(group_need, need);
      }
      // Frames join only the last decoding of the call, so that nothing given waits behind them.
      for (size_t g = 0; g < groups.size(); ++g) {
        const bool last = g + 1 == groups.size() && alone.empty();
        if (!groups[g].empty()) answer_group(work, groups[g], on_done, last ? late : nullptr);
      }
    }
  } catch (...) {
    if (session_) session_->clear();  // the context may hold half-evaluated sequences
    held_.clear();
    prefix_in_session_ = false;
    throw;
  }
  for (const size_t f : alone) {
    answer_frame(*frames[f].questions, *frames[f].images, frames[f].image_key,
                 [&](size_t q, std::vector<Generation> answers) { on_done(f, q, std::move(answers)); });
  }
}

void ModelWorker::answer_group(std::deque<FrameState>& work, const std::vector<size_t>& group, const FramesAnswersDone& on_done,
                               const LateFrames* late) {
  counters_.frames += group.size();
  const auto wanted = [&](const HeldPrefix& h) {
    return std::any_of(group.begin(), group.end(), [&](size_t f) { return work[f].key == h.key; });
  };
  // Room: the group's held prefixes stay; others leave, least recently used first, until the
  // group's new prefixes and its largest question fit.
  const size_t capacity = static_cast<size_t>(session_->options().n_ctx);
  size_t new_cells = 0, new_count = 0, need = 0;
  for (const size_t f : group) {
    if (held_at(work[f].key) == held_.end()) new_cells += work[f].prefix_cells, ++new_count;
    need = std::max(need, work[f].largest_need);
  }
  const auto held_cells = [&] {
    size_t cells = 0;
    for (const HeldPrefix& h : held_) cells += h.where.cells;
    return cells;
  };
  llama_memory_t memory = llama_get_memory(session_->context());
  while (held_cells() + new_cells + need > capacity || held_.size() + new_count > static_cast<size_t>(kHeldPrefixes)) {
    auto victim = held_.end();
    for (auto h = held_.begin(); h != held_.end(); ++h) {
      if (!wanted(*h) && (victim == held_.end() || h->last_used < victim->last_used)) victim = h;
    }
    if (victim == held_.end()) break;  // only the group's own: they fit (the grouping saw to it)
    llama_memory_seq_rm(memory, victim->where.seq, -1, -1);
    held_.erase(victim);
  }
  // The missing prefixes, each evaluated alone into a free prefix sequence.
  for (const size_t f : group) {
    FrameState& state = work[f];
    if (auto h = held_at(state.key); h != held_.end()) {
      state.cached_cells = h->where.cells;
      continue;
    }
    if (!state.prefix) {  // held when the call began, then made room for another group's
      const std::string text = state.frame->questions->front().text.substr(0, state.cut);
      state.prefix = std::make_unique<EncodedPrompt>(encode(*model_, tokenize(*model_, text, *state.frame->images), &embeddings_));
    }
    llama_seq_id seq = 0;
    while (std::any_of(held_.begin(), held_.end(), [&](const HeldPrefix& h) { return h.where.seq == seq; })) ++seq;
    const auto t0 = std::chrono::steady_clock::now();
    const llama_pos end = session_->evaluate_alone(*state.prefix, seq, 0);
    held_.push_back({state.key, {seq, end, state.prefix_cells}, 0});
    ++counters_.prefix_evaluations;
    counters_.prefix_tokens += state.prefix_cells;
    counters_.seconds.prefixes += seconds_since(t0);
  }
  // Every held prefix is the decoder's (their cells are taken, and none leaves while it runs); each
  // question continues its frame's.
  std::vector<SharedPrefix> prefixes;
  for (HeldPrefix& h : held_) prefixes.push_back(h.where);
  struct Answer {
    size_t frame, question, k;
  };
  std::vector<Answer> answer_of;  // by request
  const auto add_requests = [&](size_t f, std::vector<QuestionRequest>& requests) {
    const auto h = held_at(work[f].key);
    h->last_used = ++use_clock_;
    FrameState& state = work[f];
    const std::vector<FrameQuestion>& questions = *state.frame->questions;
    state.answers.resize(questions.size());
    state.missing.resize(questions.size());
    for (size_t q = 0; q < questions.size(); ++q) {
      state.answers[q].resize(questions[q].answers.size());
      state.missing[q] = questions[q].answers.size();
      for (size_t k = 0; k < questions[q].answers.size(); ++k) {
        const TextProgress* on_text = k == 0 && questions[q].on_text ? &questions[q].on_text : nullptr;
        requests.push_back({&state.suffixes[q], questions[q].answers[k], k > 0, on_text, static_cast<size_t>(h - held_.begin())});
        answer_of.push_back({f, q, k});
      }
    }
  };
  std::vector<QuestionRequest> requests;
  bool sampled_groups = false;
  for (const size_t f : group) {
    add_requests(f, requests);
    for (const FrameQuestion& q : *work[f].frame->questions) sampled_groups = sampled_groups || q.answers.size() > 1;
  }
  const auto answered = [&](size_t request, Generation g) {
    const Answer& a = answer_of[request];
    FrameState& state = work[a.frame];
    g.prompt_tokens = state.prefix_cells + state.suffixes[a.question].prompt.token_count();
    g.cached_prompt_tokens = state.cached_cells;
    state.answers[a.question][a.k] = std::move(g);
    if (--state.missing[a.question] == 0) on_done(a.frame, a.question, std::move(state.answers[a.question]));
  };
  const int room = session_->options().n_seq_max - kHeldPrefixes;
  const int parallel = options_.parallel > 0 && !sampled_groups ? std::min(options_.parallel, room) : room;

  // Frames that join while the group decodes: about a held prefix, with room for their largest
  // question beside all held prefixes (so the decoder can always admit it once others end).
  std::vector<QuestionRequest> joining;
  const JoinFrame join = [&](const FrameWork& frame) -> std::optional<size_t> {
    FrameState state;
    state.frame = &frame;
    if (frame.questions->empty() || !find_frame_prefix(state) || held_at(state.key) == held_.end()) return std::nullopt;
    for (const FrameQuestion& q : *frame.questions) {
      // Sampled groups are decoded with every sequence (see answer_frame), and need as many.
      if (q.answers.size() > 1 && (parallel < room || q.answers.size() > static_cast<size_t>(parallel))) return std::nullopt;
    }
    encode_frame(state);
    if (held_cells() + state.largest_need > capacity) return std::nullopt;
    state.cached_cells = state.prefix_cells;
    work.push_back(std::move(state));
    ++counters_.frames;
    add_requests(work.size() - 1, joining);
    return work.size() - 1;
  };
  const MoreRequests more = [&] {
    joining.clear();
    (*late)(join);
    return std::move(joining);
  };
  const auto t0 = std::chrono::steady_clock::now();
  ParallelDecodeStats stats;
  decode_parallel(*session_, prefixes, requests, parallel, kHeldPrefixes, answered, &stats, late ? &more : nullptr);
  count_decoding(stats, t0, counters_);
}

}  // namespace drivevqa
