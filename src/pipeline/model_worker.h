// One loaded model answering a frame's questions: the engine stage of the pipeline.
//
// A frame's questions share their images. With frame reuse (the default) the images go through the
// vision tower once, the text up to the last image (the shared prefix, in the shared layout) is
// evaluated once into sequence 0, and every question is decoded in parallel over it
// (engine/parallel_decode.h). Without frame reuse every question is evaluated from scratch, one at a
// time, as the seed script does.
//
// What must hold: a question's greedy answer with parallel 1 equals answering its whole prompt in a
// fresh context; the prefix left in the context is reused only by a frame with the same prefix text
// and image files.
#pragma once

#include <functional>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/parallel_decode.h"
#include "pipeline/run_counters.h"
#include "prompt/task_prompts.h"

namespace drivevqa {

struct FrameOptions {
  PromptLayout layout = PromptLayout::kShared;
  bool reuse = true;           // false: the seed script's algorithm (no reuse of image work between questions)
  int parallel = 0;            // questions decoded at once; 0: as many as the context holds
  int max_context = 32768;     // KV cells one context may have (all parallel questions together)
  ggml_type kv_type = GGML_TYPE_F16;
  bool close_ups = false;      // questions carry their own images (object close-ups): room to keep theirs too
  size_t history_images = 0;   // earlier frames' images a frame shows: room to keep them for the next frames
  bool sample_groups = false;  // questions may want several answers (self-consistency): `parallel` does not apply
  bool marked_images = false;  // frames of marker sets (--draw_markers): room to keep a frame's worth of marked cameras
  // The whole context (max_context cells, every sequence) from the first frame on, rather than
  // grown to what frames need: a server's rounds vary in size, and a context made anew loses the
  // prefix it holds.
  bool whole_context = false;
};

struct FrameQuestion {
  std::string text;           // the whole chat text, one image marker per image: the frame's, then close_ups
  // The answers wanted (at least one): more than one are decoded as a group that evaluates the
  // question's suffix once (self-consistency samples, engine/parallel_decode.h).
  std::vector<GenerationParams> answers;
  std::vector<const RgbImage*> close_ups;  // the question's own images, after the frame's shared ones
  TextProgress on_text;  // optional, for its first answer (engine/parallel_decode.h): streaming, stop strings
};

// `engine` with the plan of the largest context a ModelWorker with `options` makes, for the memory
// check at load time (engine/memory_plan.h).
EngineOptions with_frame_plan(EngineOptions engine, const FrameOptions& options);

// One frame of several answered together (ModelWorker::answer_frames); what it points at must live
// until that returns.
struct FrameWork {
  const std::vector<FrameQuestion>* questions = nullptr;
  const std::vector<const RgbImage*>* images = nullptr;
  std::string image_key;
};

class ModelWorker {
 public:
  // `counters` must outlive the worker (it adds to them as it works).
  ModelWorker(std::unique_ptr<Model> model, const FrameOptions& options, RunCounters& counters);
  ~ModelWorker();

  // Called once per question, when all of its answers are in (in the order of FrameQuestion::answers).
  using AnswersDone = std::function<void(size_t question, std::vector<Generation> answers)>;

  // Answers questions that share `images` (identified by `image_key`, e.g. their file paths);
  // on_done as each question ends. The images and close-ups must live until it returns. Throws
  // ModelError (or bad_alloc) when the engine fails; questions already delivered stay answered.
  // A frame with a question of several answers is decoded with as many sequences as its context
  // holds, whatever FrameOptions::parallel says, so that sampled answers do not depend on it.
  void answer_frame(const std::vector<FrameQuestion>& questions, const std::vector<const RgbImage*>& images,
                    const std::string& image_key, const AnswersDone& on_done);

  // Adds a frame to a running answer_frames when its prefix is one the worker holds now and its
  // questions fit beside the held prefixes. Returns its frame index for on_done (they continue
  // after answer_frames' `frames`, in joining order), or nullopt: it did not join and nothing of
  // it is kept (answer it in a later call). A frame that joins, and what it points at, must live
  // until answer_frames returns.
  using JoinFrame = std::function<std::optional<size_t>(const FrameWork& frame)>;
  // Called between decoding steps while answer_frames decodes, to offer frames that arrived since
  // (a server's requests) through the JoinFrame it is given; it may throw, which ends
  // answer_frames as an engine failure does.
  using LateFrames = std::function<void(const JoinFrame& join)>;

  // Several frames' questions in the same decoding batches (a server's rounds; needs
  // FrameOptions::whole_context). Each frame's prefix is evaluated into a sequence of its own, or
  // found there from an earlier call: up to kHeldPrefixes stay while room allows, the least
  // recently used leaving first. Frames that hold more together than the context go in groups;
  // a frame without a shared prefix (seed layout, or questions that differ before the last image)
  // goes alone through answer_frame. Frames about held prefixes can join the call's last group
  // while it decodes (`late`, optional; none when a frame goes alone). on_done(frame, question,
  // answers) as each question ends; throws as answer_frame does.
  using FramesAnswersDone = std::function<void(size_t frame, size_t question, std::vector<Generation> answers)>;
  void answer_frames(std::span<const FrameWork> frames, const FramesAnswersDone& on_done, const LateFrames* late = nullptr);
  static constexpr int kHeldPrefixes = 8;

 private:
  void ensure_session(size_t cells, int sequences);
  // The frame's shared prefix (`text` over `images`), encoded unless it is the one already held;
  // "" : the frame has none.
  void encode_prefix(const std::string& text, const std::vector<const RgbImage*>& images, const std::string& image_key);
  // Encodes `wave`'s suffixes (each question's text after `cut`) and decodes them in parallel.
  void answer_wave(std::span<const FrameQuestion> wave, size_t cut, const std::vector<const RgbImage*>& images,
                   int parallel, const AnswersDone& on_done);
  // Sequence 0 of the session holds the prefix (evaluated unless it is there already), or the
  // session is cleared when there is none. True when it was there already.
  bool place_prefix(bool has_prefix, size_t prefix_cells);

  std::unique_ptr<Model> model_;
  FrameOptions options_;
  RunCounters& counters_;
  EmbeddingCache embeddings_;
  std::unique_ptr<Session> session_;
  // The shared prefix in sequence 0 of the session: its key (text + image files) and extent.
  std::string prefix_key_;
  std::unique_ptr<EncodedPrompt> prefix_;
  llama_pos prefix_end_ = 0;
  bool prefix_in_session_ = false;

  // answer_frames' prefixes, in sequences 0..kHeldPrefixes-1; emptied whenever the cache is cleared.
  struct HeldPrefix {
    std::string key;  // prefix text + image key, as prefix_key_
    SharedPrefix where;
    uint64_t last_used = 0;
  };
  struct FrameState;
  // The questions of frames `group` (indices into `work`) over their prefixes, and those of frames
  // that join meanwhile (appended to `work`).
  void answer_group(std::deque<FrameState>& work, const std::vector<size_t>& group, const FramesAnswersDone& on_done,
                    const LateFrames* late);
  // Where `state.frame`'s shared prefix ends and its key; false when it has none (it goes alone).
  bool find_frame_prefix(FrameState& state) const;
  // Encodes its suffixes, and its prefix unless that is held.
  void encode_frame(FrameState& state);
  std::vector<HeldPrefix>::iterator held_at(const std::string& key);
  std::vector<HeldPrefix> held_;
  uint64_t use_clock_ = 0;
};

}  // namespace drivevqa
