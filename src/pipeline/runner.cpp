#include "pipeline/runner.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <stdexcept>
#include <unordered_map>

#include "lora/lora_convert.h"
#include "pipeline/kb_examples.h"
#include "prompt/chat_prompt.h"
#include "util/error.h"
#include "util/atomic_file.h"
#include "util/files.h"
#include "util/interrupt.h"
#include "util/stopwatch.h"
#include "vote/self_consistency.h"

namespace drivevqa {
namespace {

// Two frames' worth of cameras: a frame's images stay while its items (of either model) are answered;
// with history, its earlier frames' images too (they are the next frames' history).
constexpr size_t kCachedImages = 12;
// With interleave_frames: frames decoded together (their decoded images are held meanwhile).
constexpr size_t kFramesTogether = 4;

ItemResult error_result(Subtask s, ModelSize routed, const std::string& reason) {
  ItemResult r;
  r.subtask = s;
  r.routed = routed;
  r.model_used = "none";
  r.answer = std::string(kErrorAnswerPrefix) + reason;
  r.is_error = true;
  return r;
}

}  // namespace

// An item that a model still has to answer.
struct Runner::Pending {
  const QuestionItem* item = nullptr;
  Subtask subtask = Subtask::kPerceptionMcq;
  ModelSize routed = ModelSize::k7B;
  std::string kb_context;
  std::string examples;     // knowledge-base question/answer pairs of its subtask (--few_shot)
  std::string instruction;  // the answer's form, said after the question
  GenerationParams params;
  bool fallback = false;  // handed over by a failed 72B model
  std::vector<ObjectRef> close_ups;  // the objects it names, when its subtask gets close-ups
  std::vector<ObjectRef> markers;    // drawn on its camera images (--draw_markers): its frame's marker set

  const ItemRequest* request = nullptr;  // its own request (RunOptions::item_request), if any
  AnswerKind kind = AnswerKind::kOpen;  // the answer's shape as the scorer reads it (for votes)
  SelfConsistency self_consistency;     // its samples (fewer than 2: one answer, not voted)

  ItemResult error(const std::string& reason) const { return error_result(subtask, routed, reason); }
  // Its answers, in the order answers_to_decode() gave (FrameQuestion::answers).
  ItemResult answer(ModelSize answered_by, std::vector<Generation> answers, RunCounters& counters) const;
};

ItemResult Runner::Pending::answer(ModelSize answered_by, std::vector<Generation> answers, RunCounters& counters) const {
  ItemResult r;
  r.subtask = subtask;
  r.routed = routed;
  r.model_used = answered_by == ModelSize::k72B ? "72B" : fallback ? "7B_fallback" : "7B";
  for (const Generation& g : answers) r.generated_tokens += g.tokens.size();
  r.prompt_tokens = answers.front().prompt_tokens;
  r.cached_prompt_tokens = answers.front().cached_prompt_tokens;
  r.cut_by_budget = answers.front().stop == StopReason::kTokenBudget;
  if (self_consistency.samples < 2) {
    r.answer = std::move(answers.front().text);
    return r;
  }
  std::vector<std::string> texts;
  for (Generation& g : answers) texts.push_back(std::move(g.text));
  const Vote vote = choose_answer(kind, texts);
  r.answer = vote.answer;
  r.votes = vote_json(vote, kind);
  ++counters.voted_questions;
  counters.vote_ties += vote.tie;
  counters.vote_overrides += vote.overrides;
  return r;
}


// An earlier frame as an item shows it: how long before, and the cameras chosen.
struct Runner::HistoryShown {
  double seconds_earlier = 0;
  std::vector<CameraImage> images;
};

Runner::Runner(RunOptions options) : options_(std::move(options)) {
  if (!options_.model_7b && !options_.model_72b) throw UsageError("no model given: pass --model_7b and/or --model_72b");
  // Work in progress (#15): refused rather than silently ignored until each lands.
  // Few-shot examples come from the knowledge base, whatever --rag_mode says.
  if (most_over_subtasks(options_.prompts.few_shot, options_.few_shot) > 0 && !options_.kb) {
    throw UsageError("--few_shot (or a prompts file's few_shot) needs --kb_file: the examples come from the knowledge base");
  }
  // What the prompts ask for sizes the engine's caches.
  options_.frames.close_ups = most_over_subtasks(options_.prompts.object_crops, options_.object_crops);
  options_.frames.sample_groups = most_over_subtasks(options_.prompts.self_consistency, options_.self_consistency) > 1;
  options_.frames.marked_images = most_over_subtasks(options_.prompts.draw_markers, options_.draw_markers);
  options_.frames.history_images = history_image_budget(options_);
  cached_images_ = kCachedImages + options_.frames.history_images;
}

size_t history_image_budget(const RunOptions& options) {  // runner.h
  const int most = most_over_subtasks(options.prompts.history_frames, options.history_frames);
  return static_cast<size_t>(most) * options.history_cameras.size();
}

std::vector<Runner::HistoryShown> Runner::shown_history(const QuestionItem& item, Subtask s) const {
  const size_t n = std::min(item.history.size(), static_cast<size_t>(for_subtask(options_.prompts.history_frames, s, options_.history_frames)));
  std::vector<HistoryShown> shown;
  for (size_t k = n; k-- > 0;) {  // oldest first
    HistoryShown frame{kKeyFrameSeconds * static_cast<double>(k + 1), {}};
    for (const std::string& camera : options_.history_cameras) {
      for (const CameraImage& image : item.history[k].images) {
        if (image.camera == camera) frame.images.push_back(image);
      }
    }
    if (!frame.images.empty()) shown.push_back(std::move(frame));
  }
  return shown;
}

// Items with the same image files (history included) and, with --draw_markers, the same marker set
// form a frame (the seed's algorithm: every item its own frame).
std::string Runner::frame_key(const QuestionItem& item, Subtask s) const {
  if (!options_.frames.reuse) return std::to_string(item.index);
  std::string key;
  for (const HistoryShown& frame : shown_history(item, s)) {
    for (const CameraImage& camera : frame.images) key += camera.path.string() + '\n';
  }
  for (const CameraImage& camera : item.images) key += camera.path.string() + '\n';
  if (for_subtask(options_.prompts.draw_markers, s, options_.draw_markers)) {
    key += marker_set_key(choose_markers(item.question, item.images).marked);  // "" without markers: the frame's own
  }
  return key;
}

Runner::~Runner() = default;

std::pair<Subtask, ModelSize> route_item(const RoutingTable& routes, const QuestionItem& item) {
  const Subtask s = classify(item.category, item.question);
  return {s, routes.model_for(s)};
}

ModelWorker& Runner::worker(ModelSize size) {
  std::unique_ptr<ModelWorker>& slot = size == ModelSize::k7B ? model_7b_ : model_72b_;
  if (!slot) {
    const std::filesystem::path& dir = size == ModelSize::k7B ? *options_.model_7b : *options_.model_72b;
    spdlog::info("loading the {} model from {}", model_size_name(size), dir.string());
    ModelFiles files = resolve_model(dir, options_.sources);
    const std::optional<std::filesystem::path>& lora = size == ModelSize::k7B ? options_.lora_7b : options_.lora_72b;
    if (lora) files = with_lora(files, *lora, options_.sources, options_.lora_mode);
    slot = std::make_unique<ModelWorker>(Model::load(files, with_frame_plan(options_.engine, options_.frames)), options_.frames, counters_);
  }
  return *slot;
}

void Runner::load_models() {
  if (options_.model_72b) loaded_worker(ModelSize::k72B);
  if (options_.model_7b) loaded_worker(ModelSize::k7B);
}

bool Runner::has_model(ModelSize size) const {
  return size == ModelSize::k7B ? model_7b_ != nullptr : model_72b_ != nullptr && model_72b_failure_.empty();
}

ModelSize Runner::available(ModelSize routed) const {
  // With one model given, every item runs on it.
  if (routed == ModelSize::k72B && !options_.model_72b) return ModelSize::k7B;
  if (routed == ModelSize::k7B && !options_.model_7b) return ModelSize::k72B;
  return routed;
}

void Runner::give_up_72b(const std::string& cause) {
  model_72b_failure_ = cause;
  model_72b_.reset();  // free its memory for the 7B model
  spdlog::warn("the 72B model failed ({}); it is not used again in this run{}", cause,
               options_.fallback_72b_to_7b && options_.model_7b ? ", its items go to the 7B model" : "");
}

std::shared_ptr<const RgbImage> Runner::decoded(const std::filesystem::path& path, std::string& warning) {
  for (const auto& [p, image] : image_cache_) {
    if (p == path) return image;
  }
  try {
    auto image = std::make_shared<const RgbImage>(load_image_file(path, &options_.sizing));
    ++counters_.images_decoded;
    if (!options_.frames.reuse) return image;
    if (image_cache_.size() >= cached_images_) image_cache_.erase(image_cache_.begin());
    image_cache_.emplace_back(path, image);
    return image;
  } catch (const InputError& e) {
    warning = e.what();
    return nullptr;
  }
}

std::optional<Runner::Pending> Runner::prepare(const QuestionItem& item, const ResultSink& sink) {
  Pending p;
  p.item = &item;
  std::tie(p.subtask, p.routed) = route_item(options_.routes, item);
  p.request = options_.item_request ? options_.item_request(item) : nullptr;
  if (p.request && p.request->model) p.routed = *p.request->model;
  for (const std::string& w : item.warnings) spdlog::warn("item {}: {}", item.index, w);
  if (!item.problem.empty()) {
    sink(item, p.error(item.problem));
    return std::nullopt;
  }
  if (options_.kb && options_.rag_mode != RagMode::kOff) {
    if (options_.rag_mode == RagMode::kOverride) {
      const auto known = options_.kb->exact(item.scene_token, item.frame_token, item.question);
      if (known && !known->answer.empty()) {
        ++counters_.kb_answers;
        ItemResult r;
        r.subtask = p.subtask;
        r.routed = p.routed;
        r.model_used = "kb";
        r.answer = known->answer;
        sink(item, std::move(r));
        return std::nullopt;
      }
    }
    p.kb_context = kb_context_block(options_.kb->retrieve(item.scene_token, item.frame_token, item.question, options_.kb_topk));
  }
  if (const int k = for_subtask(options_.prompts.few_shot, p.subtask, options_.few_shot); k > 0) {
    p.examples = few_shot_text(*options_.kb, p.subtask, item, k, counters_);
  }
  p.params = options_.generation;
  p.params.max_new_tokens = token_budget(options_.prompts, p.subtask);
  if (p.request && p.request->max_new_tokens) p.params.max_new_tokens = *p.request->max_new_tokens;
  if (options_.max_new_tokens_cap > 0) p.params.max_new_tokens = std::min(p.params.max_new_tokens, options_.max_new_tokens_cap);
  if (options_.answer_format != AnswerFormat::kFree) {
    const AnswerShape shape = answer_shape(p.subtask, item.question);
    p.instruction = answer_instruction(options_.prompts, shape, options_.mcq_format);
    if (options_.answer_format == AnswerFormat::kStructured) p.params.grammar = answer_grammar(shape, options_.mcq_format);
    // A shaped answer cannot be longer than its shape: reserve no KV cells beyond it.
    if (const int cap = answer_token_cap(shape, options_.mcq_format); cap > 0) p.params.max_new_tokens = std::min(p.params.max_new_tokens, cap);
  }
  p.params.seed = options_.generation.seed + static_cast<uint32_t>(item.index);  // order-independent sampling
  if (p.request && p.request->sampling) {
    const GenerationParams& s = *p.request->sampling;
    p.params.do_sample = s.do_sample;
    p.params.temperature = s.temperature;
    p.params.top_p = s.top_p;
    p.params.seed = s.seed;
  }
  p.kind = answer_shape(p.subtask, item.question).kind;
  p.self_consistency = {for_subtask(options_.prompts.self_consistency, p.subtask, options_.self_consistency),
                        options_.sc_temperature, options_.sc_top_p};
  if (for_subtask(options_.prompts.object_crops, p.subtask, options_.object_crops)) p.close_ups = object_refs(item.question);
  if (for_subtask(options_.prompts.draw_markers, p.subtask, options_.draw_markers)) {
    MarkerChoice markers = choose_markers(item.question, item.images);
    for (const std::string& why : markers.skipped) spdlog::warn("item {}: no marker for {}", item.index, why);
    p.markers = std::move(markers.marked);
  }
  if (for_subtask(options_.prompts.history_frames, p.subtask, options_.history_frames) > 0) {
    for (const std::string& w : item.history_warnings) spdlog::warn("item {}: {}", item.index, w);
  }
  return p;
}

std::vector<const QuestionItem*> Runner::frame_mates(std::span<const QuestionItem* const> todo,
                                                     std::span<const QuestionItem* const> answered) const {
  const auto model_frame = [&](const QuestionItem& item) {
    const auto [subtask, model] = route_item(options_.routes, item);
    return std::string(model_size_name(available(model))) + '\n' + frame_key(item, subtask);
  };
  std::unordered_map<std::string, bool> open_frames;
  for (const QuestionItem* item : todo) open_frames[model_frame(*item)] = true;
  std::vector<const QuestionItem*> mates;
  for (const QuestionItem* item : answered) {
    if (item->problem.empty() && open_frames.count(model_frame(*item))) mates.push_back(item);
  }
  return mates;
}

void Runner::answer_all(std::span<const QuestionItem* const> items, const ResultSink& sink, const LateItems* late) {
  std::vector<Pending> for_7b, for_72b;
  for (const QuestionItem* item : items) {
    if (auto p = prepare(*item, sink)) (available(p->routed) == ModelSize::k72B ? for_72b : for_7b).push_back(std::move(*p));
  }
  if (!for_72b.empty()) {
    // Late items join only the last decoding of the call, so that nothing given waits behind them.
    std::vector<Pending> handed = answer_with(ModelSize::k72B, std::move(for_72b), sink, for_7b.empty() ? late : nullptr);
    if (!options_.keep_models_loaded) model_72b_.reset();
    for (Pending& p : handed) {
      if (options_.fallback_72b_to_7b && options_.model_7b) {
        p.fallback = true;
        for_7b.push_back(std::move(p));
      } else {
        sink(*p.item, p.error("the 72B model is unavailable: " + model_72b_failure_));
      }
    }
    // Handed-over items join the 7B model's frames in input order.
    std::stable_sort(for_7b.begin(), for_7b.end(), [](const Pending& a, const Pending& b) { return a.item->index < b.item->index; });
  }
  answer_with(ModelSize::k7B, std::move(for_7b), sink, late);
}

// A frame's images that decoded, held while its questions are answered.
struct Runner::FrameImages {
  QuestionItem usable;  // what the prompts need: the cameras whose images decoded
  std::vector<std::shared_ptr<const RgbImage>> held;
  std::vector<const RgbImage*> images;
  std::string key;      // their files, one per line: the frame's identity for the engine
  std::vector<HistoryView> history;  // the earlier frames' cameras that decoded (their images come first)
  FrameMarkers markers;  // with --draw_markers: the marked copies `images` points to for their cameras
};

// What the engine needs of a frame: its questions, and the images they point at.
struct Runner::PreparedFrame {
  FrameImages images;
  FrameCloseUps close_ups;
  std::vector<FrameQuestion> questions;
};

std::vector<Runner::Pending> Runner::answer_with(ModelSize size, std::vector<Pending> items, const ResultSink& sink,
                                                 const LateItems* late) {
  if (items.empty()) return {};
  ModelWorker* model = loaded_worker(size);
  if (!model) return items;
  std::vector<Pending> handed;  // for the 7B model, when the 72B model fails
  std::vector<std::vector<Pending>> frames = group_by_frame(std::move(items));
  const size_t step = options_.interleave_frames ? kFramesTogether : 1;
  for (size_t begin = 0; begin < frames.size(); begin += step) {
    throw_if_interrupted();
    const std::span<std::vector<Pending>> some = std::span(frames).subspan(begin, std::min(step, frames.size() - begin));
    if (size == ModelSize::k72B && !model_72b_failure_.empty()) {
      for (std::vector<Pending>& frame : some) std::move(frame.begin(), frame.end(), std::back_inserter(handed));
      continue;
    }
    if (options_.interleave_frames) {
      answer_frames(*model, size, some, sink, handed, begin + step >= frames.size() ? late : nullptr);
    } else {
      answer_frame(*model, size, some.front(), sink, handed);
    }
  }
  return handed;
}

ModelWorker* Runner::loaded_worker(ModelSize size) {
  if (size == ModelSize::k7B) return &worker(size);  // a 7B model that cannot load ends the run
  if (!model_72b_failure_.empty()) return nullptr;
  try {
    return &worker(size);
  } catch (const ModelError& e) {
    give_up_72b(e.what());
  } catch (const std::bad_alloc&) {
    give_up_72b("out of memory while loading");
  }
  return nullptr;
}

// Items with the same image files, in order of first appearance.
std::vector<std::vector<Runner::Pending>> Runner::group_by_frame(std::vector<Pending> items) const {
  std::vector<std::vector<Pending>> frames;
  std::unordered_map<std::string, size_t> frame_of;
  for (Pending& p : items) {
    const auto [it, added] = frame_of.emplace(frame_key(*p.item, p.subtask), frames.size());
    if (added) frames.emplace_back();
    frames[it->second].push_back(std::move(p));
  }
  return frames;
}

std::optional<Runner::PreparedFrame> Runner::prepare_frame(const std::vector<Pending>& frame, const ResultSink& sink) {
  FrameImages images = decode_frame_images(frame);
  if (images.usable.images.empty()) {
    for (const Pending& p : frame) sink(*p.item, p.error("item has no readable image"));
    return std::nullopt;
  }
  std::vector<CloseUpRequest> wanted;
  for (const Pending& p : frame) wanted.push_back({p.item->index, p.close_ups});
  FrameCloseUps close_ups = cut_close_ups(wanted, images.usable.images, options_.crop_size, counters_);
  std::vector<FrameQuestion> questions = build_frame_questions(frame, images, close_ups);
  return PreparedFrame{std::move(images), std::move(close_ups), std::move(questions)};
}

void Runner::answer_frame(ModelWorker& model, ModelSize size, std::vector<Pending>& frame, const ResultSink& sink,
                          std::vector<Pending>& handed) {
  const std::optional<PreparedFrame> prepared = prepare_frame(frame, sink);
  if (!prepared) return;

  // Engine: the frame's questions, decoded together.
  std::vector<bool> delivered(frame.size(), false);
  const auto deliver = [&](size_t i, std::vector<Generation> answers) {
    ItemResult r = frame[i].answer(size, std::move(answers), counters_);
    delivered[i] = true;
    sink(*frame[i].item, std::move(r));
  };
  std::vector<std::vector<Pending>*> failed = {&frame};
  try {
    model.answer_frame(prepared->questions, prepared->images.images, prepared->images.key, deliver);
  } catch (const InputError& e) {
    fail_undelivered(size, failed, {delivered}, e.what(), true, sink, handed);
  } catch (const ModelError& e) {
    fail_undelivered(size, failed, {delivered}, e.what(), false, sink, handed);
  } catch (const std::bad_alloc&) {
    fail_undelivered(size, failed, {delivered}, "out of memory while answering with the " + std::string(model_size_name(size)) + " model",
                     false, sink, handed);
  }
}

void Runner::answer_frames(ModelWorker& model, ModelSize size, std::span<std::vector<Pending>> frames, const ResultSink& sink,
                           std::vector<Pending>& handed, const LateItems* late) {
  // Per frame the engine answers (those given, then those that join), by its index for the engine.
  std::deque<PreparedFrame> prepared;
  std::deque<std::vector<Pending>> joined_items;  // the items of frames that joined
  std::vector<FrameWork> works;
  std::vector<std::vector<Pending>*> which;
  std::vector<std::vector<bool>> delivered;
  for (std::vector<Pending>& frame : frames) {
    std::optional<PreparedFrame> p = prepare_frame(frame, sink);
    if (!p) continue;
    prepared.push_back(std::move(*p));
    which.push_back(&frame);
    delivered.emplace_back(frame.size(), false);
  }
  for (const PreparedFrame& p : prepared) works.push_back({&p.questions, &p.images.images, p.images.key});
  const auto deliver = [&](size_t f, size_t i, std::vector<Generation> answers) {
    std::vector<Pending>& frame = *which[f];
    ItemResult r = frame[i].answer(size, std::move(answers), counters_);
    delivered[f][i] = true;
    sink(*frame[i].item, std::move(r));
  };
  // Items that arrived meanwhile: this model's, about a frame whose prefix it holds, join; the
  // others go back to the caller.
  std::deque<FrameWork> joined_works;
  const ModelWorker::LateFrames offer = [&](const ModelWorker::JoinFrame& join) {
    std::vector<Pending> mine;
    for (const QuestionItem* item : late->take()) {
      std::optional<Pending> p = prepare(*item, sink);
      if (!p) continue;  // answered already (with its error)
      if (available(p->routed) != size) {
        late->decline(*item);
        continue;
      }
      mine.push_back(std::move(*p));
    }
    if (mine.empty()) return;  // the usual case: asked at every decoding step
    std::vector<std::vector<Pending>> offered = group_by_frame(std::move(mine));
    for (size_t k = 0; k < offered.size(); ++k) {
      std::vector<Pending>& frame = offered[k];
      std::optional<size_t> f;
      try {
        std::optional<PreparedFrame> p = prepare_frame(frame, sink);
        if (!p) continue;
        const PreparedFrame& kept = prepared.emplace_back(std::move(*p));
        f = join(joined_works.emplace_back(FrameWork{&kept.questions, &kept.images.images, kept.images.key}));
      } catch (...) {  // the engine failed: the items not joined yet were never part of this, and go back
        for (; k < offered.size(); ++k) {
          for (const Pending& item : offered[k]) late->decline(*item.item);
        }
        throw;
      }
      if (f) {
        if (*f != which.size()) throw std::logic_error("a joining frame's index is not the next one");
        which.push_back(&joined_items.emplace_back(std::move(frame)));
        delivered.emplace_back(which.back()->size(), false);
        continue;
      }
      for (const Pending& item : frame) late->decline(*item.item);
      joined_works.pop_back();
      prepared.pop_back();
    }
  };
  try {
    model.answer_frames(works, deliver, late ? &offer : nullptr);
  } catch (const InputError& e) {
    if (which.size() == 1) return fail_undelivered(size, which, delivered, e.what(), true, sink, handed);
    // Something of one frame's the engine refuses: the frames go again one by one, so that only
    // that frame's items get the error.
    for (size_t f = 0; f < which.size(); ++f) {
      std::vector<Pending> rest;
      for (size_t i = 0; i < which[f]->size(); ++i) {
        if (!delivered[f][i]) rest.push_back((*which[f])[i]);
      }
      if (!rest.empty()) answer_frame(model, size, rest, sink, handed);
    }
  } catch (const ModelError& e) {
    fail_undelivered(size, which, delivered, e.what(), false, sink, handed);
  } catch (const std::bad_alloc&) {
    fail_undelivered(size, which, delivered, "out of memory while answering with the " + std::string(model_size_name(size)) + " model",
                     false, sink, handed);
  }
}

void Runner::fail_undelivered(ModelSize size, std::span<std::vector<Pending>* const> frames,
                              const std::vector<std::vector<bool>>& delivered, const std::string& failure, bool input_error,
                              const ResultSink& sink, std::vector<Pending>& handed) {
  // Something in these items the engine refuses (not a model failure): their items only.
  const bool model_failed = !input_error;
  if (model_failed && size == ModelSize::k72B) give_up_72b(failure);
  for (size_t f = 0; f < frames.size(); ++f) {
    std::vector<Pending>& frame = *frames[f];
    for (size_t i = 0; i < frame.size(); ++i) {
      if (delivered[f][i]) continue;
      if (model_failed && size == ModelSize::k72B) {
        handed.push_back(std::move(frame[i]));
      } else {
        sink(*frame[i].item, frame[i].error((model_failed && frame[i].fallback ? "the 7B fallback failed too: " : "") + failure));
      }
    }
  }
}

// Decode: the frame's images, once; an image that does not decode is skipped with a warning per item.
Runner::FrameImages Runner::decode_frame_images(const std::vector<Pending>& frame) {
  const auto t0 = std::chrono::steady_clock::now();
  FrameImages out;
  // Decoded and held in prompt order; false (warned per item) when it does not decode.
  const auto hold = [&](const CameraImage& camera, const char* what) {
    std::string warning;
    auto image = decoded(camera.path, warning);
    if (!image) {
      for (const Pending& p : frame) spdlog::warn("item {}: {}{} image skipped: {}", p.item->index, what, camera.camera, warning);
      return false;
    }
    out.images.push_back(image.get());
    out.held.push_back(std::move(image));
    out.key += camera.path.string() + '\n';
    return true;
  };
  // Earlier frames first (oldest first), as the prompt shows them.
  for (const HistoryShown& earlier : shown_history(*frame.front().item, frame.front().subtask)) {
    HistoryView view{earlier.seconds_earlier, {}};
    for (const CameraImage& camera : earlier.images) {
      if (hold(camera, "history ")) view.cameras.push_back(camera.camera);
    }
    if (!view.cameras.empty()) out.history.push_back(std::move(view));
  }
  for (const CameraImage& camera : frame.front().item->images) {
    if (hold(camera, "")) out.usable.images.push_back(camera);
  }
  // A marker set's frame (frame_key): its cameras marked once for all its questions, keyed apart.
  if (const std::vector<ObjectRef>& markers = frame.front().markers; !markers.empty()) {
    const std::span<const RgbImage*> cameras = std::span(out.images).last(out.usable.images.size());
    out.markers = draw_frame_markers(markers, out.usable.images, cameras, counters_);
    for (const std::string& why : out.markers.skipped) {
      for (const Pending& p : frame) spdlog::warn("item {}: no marker for {}", p.item->index, why);
    }
    out.key += out.markers.key;
  }
  counters_.seconds.decode_images += seconds_since(t0);
  return out;
}

// Prompt: each item's chat text over the same images, then its close-ups (written to
// --dump_prompts when given: the text, and each close-up as a PNG, as the engine gets them).
std::vector<FrameQuestion> Runner::build_frame_questions(const std::vector<Pending>& frame, const FrameImages& images,
                                                         const FrameCloseUps& close_ups) const {
  std::vector<FrameQuestion> questions;
  QuestionItem usable = images.usable;
  for (size_t i = 0; i < frame.size(); ++i) {
    const Pending& p = frame[i];
    usable.question = p.item->question;
    FrameQuestion q{render_chatml(build_item_prompt(options_.prompts, p.subtask, usable, p.kb_context, options_.frames.layout,
                                                      p.instruction, close_ups.shown[i], images.history, p.examples)),
                    answers_to_decode(p.params, p.kind, p.self_consistency), close_ups.of[i],
                    p.request ? p.request->on_text : TextProgress()};
    if (!options_.dump_prompts_dir.empty()) dump_prompt(p.item->index, q, close_ups.shown[i], images.markers);
    questions.push_back(std::move(q));
  }
  return questions;
}

void Runner::dump_prompt(size_t item_index, const FrameQuestion& q, const std::vector<ObjectRef>& shown,
                         const FrameMarkers& markers) const {
  char name[32];
  std::snprintf(name, sizeof name, "%06zu", item_index);
  write_file_atomic(options_.dump_prompts_dir / (std::string(name) + ".txt"), q.text);
  for (size_t k = 0; k < shown.size(); ++k) {
    const std::vector<uint8_t> png = encode_png(*q.close_ups[k]);
    write_file_atomic(options_.dump_prompts_dir / (std::string(name) + "-" + shown[k].label + ".png"), png.data(), png.size());
  }
  for (size_t k = 0; k < markers.images.size(); ++k) {
    const std::vector<uint8_t> png = encode_png(*markers.images[k]);
    write_file_atomic(options_.dump_prompts_dir / (std::string(name) + "-marked-" + markers.cameras[k] + ".png"), png.data(),
                      png.size());
  }
}

}  // namespace drivevqa
