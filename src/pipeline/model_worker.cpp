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

}  // namespace

EngineOptions with_frame_plan(EngineOptions engine, const FrameOptions& options) {
  engine.planned_context = (options.max_context + 255) / 256 * 256;
  const bool capped = options.parallel > 0 && !options.sample_groups;
  engine.planned_sequences = std::min(capped ? options.parallel : kMaxParallel, kMaxParallel) + 1;
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
    prefix_in_session_ = false;  // the context may hold half-evaluated sequences
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
  counters_.forked_answers += stats.forked_answers;
  counters_.suffix_tokens += stats.suffix_tokens;
  counters_.generated_tokens += stats.generated_tokens;
  counters_.max_parallel = std::max(counters_.max_parallel, stats.max_running);
  counters_.seconds.questions += seconds_since(t0);
  counters_.seconds.grammar += stats.grammar_seconds;
}

bool ModelWorker::place_prefix(bool has_prefix, size_t prefix_cells) {
  if (!has_prefix) {
    session_->clear();
    prefix_end_ = 0;
    return false;
  }
  if (prefix_in_session_) return true;
  const auto t0 = std::chrono::steady_clock::now();
  session_->clear();
  prefix_end_ = session_->evaluate_alone(*prefix_, 0, 0);
  prefix_in_session_ = true;
  ++counters_.prefix_evaluations;
  counters_.prefix_tokens += prefix_cells;
  counters_.seconds.prefixes += seconds_since(t0);
  return false;
}

}  // namespace drivevqa
