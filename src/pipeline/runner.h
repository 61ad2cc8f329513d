// The run stage: answers routed, prompted items with the 7B and/or 72B model.
//
// Work is scheduled by model, then by frame: all of the 72B model's items first (so that items a
// failing 72B model hands over join the 7B model's frames), then the 7B model's, each model's
// items grouped by their image files and answered frame by frame (pipeline/model_worker.h). With
// --draw_markers the questions of a frame with the same marker set are a frame of their own: their
// marked images differ from the frame's, so they cannot share its prefix (pipeline/frame_markers.h).
//
// What must hold: every item gets exactly one result, delivered as soon as it is known; an item
// that cannot be answered gets an error answer and the run goes on; a frame's images are decoded
// once and encoded once per model while its items are answered.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "convert/model_source.h"
#include "dataset/question_file.h"
#include "engine/image_resize.h"
#include "kb/kb_index.h"
#include "lora/lora_convert.h"
#include "pipeline/frame_close_ups.h"
#include "pipeline/frame_markers.h"
#include "pipeline/model_worker.h"
#include "pipeline/run_counters.h"
#include "prompt/task_prompts.h"
#include "results/item_result.h"
#include "route/route.h"

namespace drivevqa {

enum class RagMode { kOff, kHint, kOverride };

// What one item asks for beyond the run's settings: a request to `serve`, which sets these from
// its OpenAI parameters. Unset fields keep the run's.
struct ItemRequest {
  std::optional<ModelSize> model;           // drivevqa-7b / drivevqa-72b instead of the routed model
  std::optional<int> max_new_tokens;        // replaces the subtask's budget (still capped by the answer's shape)
  std::optional<GenerationParams> sampling; // do_sample, temperature, top_p, seed (the rest is the run's)
  TextProgress on_text;                     // as FrameQuestion::on_text
};

struct RunOptions {
  std::optional<std::filesystem::path> model_7b;
  std::optional<std::filesystem::path> model_72b;
  std::optional<std::filesystem::path> lora_7b;   // PEFT adapter folders (or roots of checkpoint-N)
  std::optional<std::filesystem::path> lora_72b;
  LoraMode lora_mode = LoraMode::kAuto;  // their language-model pairs: merged into a cached copy, or at run time
  EngineOptions engine;
  ModelSourceOptions sources;   // how Hugging Face folders are converted and cached
  RoutingTable routes;
  PromptSet prompts;
  GenerationParams generation;  // max_new_tokens is replaced per subtask
  AnswerFormat answer_format = AnswerFormat::kStructured;  // kFree: no answer shapes, the seed's prompts
  McqFormat mcq_format = McqFormat::kLetter;
  int max_new_tokens_cap = 0;   // > 0: no answer longer than this, whatever the subtask budget
  bool fallback_72b_to_7b = true;  // a failing 72B model is replaced by the 7B model
  bool keep_models_loaded = false; // false: the 72B model is freed before the 7B model loads
  std::filesystem::path dump_prompts_dir;  // non-empty: the exact chat text of each item is written there
  FrameOptions frames;          // prompt layout, reuse, parallelism, context size, KV type
  ImageSizing sizing;           // images are resized to the Qwen processor's target size
  std::shared_ptr<const KbIndex> kb;       // with rag_mode hint or override, or few_shot (pipeline/kb_examples.h)
  RagMode rag_mode = RagMode::kOff;
  int kb_topk = 4;
  bool object_crops = false;    // close-ups of the objects a question names (per subtask: prompts.object_crops)
  int crop_size = 448;          // their side in pixels of the original image
  int history_frames = 0;       // earlier key frames shown before the current images (per subtask: prompts)
  std::vector<std::string> history_cameras = {"CAM_FRONT"};  // which of their cameras
  bool draw_markers = false;    // markers on the camera images themselves (per subtask: prompts.draw_markers)
  int few_shot = 0;             // knowledge-base examples of the same subtask (per subtask: prompts.few_shot); needs kb
  int self_consistency = 0;     // sampled answers voted on; < 2: off (per subtask: prompts.self_consistency)
  float sc_temperature = 0.7f;  // their sampling
  float sc_top_p = 0.9f;
  // A server's rounds: a model's frames are decoded together, a few at a time
  // (ModelWorker::answer_frames; needs frames.whole_context), rather than one after another.
  bool interleave_frames = false;
  // Optional: the item's own request (null: none). Called while items are prepared; what it returns
  // must stay valid until the item's result is delivered.
  std::function<const ItemRequest*(const QuestionItem&)> item_request;
};

// Items that arrive while Runner::answer_all runs (a server's requests). `take()` returns them;
// each must stay valid until its result is delivered or it is declined. Those about a frame whose
// prefix the decoding model holds join the decoding under way (interleave_frames), the call's last
// one only (nothing given waits behind them); the others are handed back through
// `decline(item)`, for a later answer_all. Both are called on answer_all's thread, between
// decoding steps.
struct LateItems {
  std::function<std::vector<const QuestionItem*>()> take;
  std::function<void(const QuestionItem&)> decline;
};

// The most earlier-frame images any item of a run with `options` is shown (for cache sizes).
size_t history_image_budget(const RunOptions& options);

// The route of an item: its subtask and the model the table assigns to it.
std::pair<Subtask, ModelSize> route_item(const RoutingTable& routes, const QuestionItem& item);

class Runner {
 public:
  using ResultSink = std::function<void(const QuestionItem&, ItemResult)>;

  explicit Runner(RunOptions options);
  ~Runner();

  // Answers every item, calling `sink` once per item as its result is known (not in input order).
  // A 72B failure (load, context, allocation, decoding) sends the rest of its items to the 7B model
  // when fallback is on, else gives them error answers; a failed 72B model is not retried.
  // Throws when the 7B model cannot load, or when `sink` throws; results already delivered stand.
  // Items that arrive meanwhile may join (`late`, optional: see LateItems).
  void answer_all(std::span<const QuestionItem* const> items, const ResultSink& sink, const LateItems* late = nullptr);

  // The items of `answered` that share a model and a frame with an item of `todo`. A resumed run
  // answers them again (and keeps their journaled answers), so that a partly answered frame is
  // decoded in the same batches as in an uninterrupted run: answers depend on the batch's shape in
  // their last bits, which sampling can amplify.
  std::vector<const QuestionItem*> frame_mates(std::span<const QuestionItem* const> todo,
                                               std::span<const QuestionItem* const> answered) const;

  const RunCounters& counters() const { return counters_; }

  // Loads the models now rather than at their first item (a server's start-up). Throws as
  // answer_all does when the 7B model cannot load; a 72B model that cannot is given up (logged).
  void load_models();
  // Whether the model of `size` is loaded and usable (after load_models()).
  bool has_model(ModelSize size) const;

 private:
  struct Pending;
  ModelSize available(ModelSize routed) const;
  ModelWorker& worker(ModelSize size);
  void give_up_72b(const std::string& cause);
  std::optional<Pending> prepare(const QuestionItem& item, const ResultSink& sink);
  // Answers one model's items frame by frame; returns the items it could not answer because the
  // 72B model failed (empty for the 7B model, whose failures become error answers).
  std::vector<Pending> answer_with(ModelSize size, std::vector<Pending> items, const ResultSink& sink, const LateItems* late);
  // The model, loaded on first use; null when the 72B model failed (now or before). Throws when
  // the 7B model cannot load.
  ModelWorker* loaded_worker(ModelSize size);
  std::vector<std::vector<Pending>> group_by_frame(std::vector<Pending> items) const;
  // Answers one frame's items; those a failing 72B model leaves unanswered go to `handed`.
  void answer_frame(ModelWorker& model, ModelSize size, std::vector<Pending>& frame, const ResultSink& sink,
                    std::vector<Pending>& handed);
  // The same for several frames decoded together (interleave_frames), which `late` items may join.
  void answer_frames(ModelWorker& model, ModelSize size, std::span<std::vector<Pending>> frames, const ResultSink& sink,
                     std::vector<Pending>& handed, const LateItems* late);
  // After the engine failed on `frames`: each undelivered item gets `failure` as its error, or, for
  // a failed 72B model, is handed over to the 7B model.
  void fail_undelivered(ModelSize size, std::span<std::vector<Pending>* const> frames,
                        const std::vector<std::vector<bool>>& delivered, const std::string& failure, bool input_error,
                        const ResultSink& sink, std::vector<Pending>& handed);
  struct FrameImages;
  struct PreparedFrame;
  // A frame's images, close-ups and questions; nullopt (its items answered with an error) when none
  // of its images decodes.
  std::optional<PreparedFrame> prepare_frame(const std::vector<Pending>& frame, const ResultSink& sink);
  FrameImages decode_frame_images(const std::vector<Pending>& frame);
  std::vector<FrameQuestion> build_frame_questions(const std::vector<Pending>& frame, const FrameImages& images,
                                                   const FrameCloseUps& close_ups) const;
  void dump_prompt(size_t item_index, const FrameQuestion& q, const std::vector<ObjectRef>& shown,
                   const FrameMarkers& markers) const;
  std::shared_ptr<const RgbImage> decoded(const std::filesystem::path& path, std::string& warning);
  struct HistoryShown;
  // The earlier frames an item of subtask `s` is shown, oldest first, with the chosen cameras.
  std::vector<HistoryShown> shown_history(const QuestionItem& item, Subtask s) const;
  std::string frame_key(const QuestionItem& item, Subtask s) const;

  RunOptions options_;
  std::unique_ptr<ModelWorker> model_7b_;
  std::unique_ptr<ModelWorker> model_72b_;
  std::string model_72b_failure_;  // why the 72B model could not be used; it is not retried
  std::vector<std::pair<std::filesystem::path, std::shared_ptr<const RgbImage>>> image_cache_;  // recent frames
  size_t cached_images_ = 0;       // image_cache_'s capacity
  RunCounters counters_;
};

}  // namespace drivevqa
