// The engine side of `serve`: requests wait here, and one thread answers them with a Runner.
//
// Each round takes every request waiting and hands them to Runner::answer_all as one set of
// items: requests whose images have the same content are one frame (decoded, encoded and prefixed
// once), the questions of up to 4 frames decode together in the same batches
// (RunOptions::interleave_frames), and frame prefixes stay in the cache for later rounds' requests
// about them (ModelWorker::answer_frames). A request that arrives during a round joins the decoding
// under way when the model holds its frame's prefix (LateItems), so the batch stays full rather than
// emptying to the round's longest answer; one that cannot join waits for the next round, and from
// then on no request joins this one (it ends, and the waiting one is not passed over). Right after
// a round, the next one waits up to kGatherWindow for as many requests as the round had (the
// clients it answered last come back with their next questions).
//
// What must hold: every submitted job is completed exactly once (an answer or an error); a job
// cancelled before its round is dropped, one being decoded stops at its next token; after stop()
// nothing new is taken, and what was submitted before still finishes. Thread-safe: submit(),
// stop() and snapshot() from any thread, run() on the engine's one thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/runner.h"
#include "serve/media_store.h"

namespace drivevqa {

// One request's question, shared by its HTTP handler and the engine thread.
class ServeJob {
 public:
  // `item` names the images by their MediaStore paths (held by `leases`).
  ServeJob(QuestionItem item, ItemRequest request, std::vector<std::string> stop,
           std::vector<std::unique_ptr<MediaStore::Lease>> leases);
  ServeJob(const ServeJob&) = delete;  // its request's on_text points at it
  ServeJob& operator=(const ServeJob&) = delete;

  const QuestionItem& item() const { return item_; }
  const ItemRequest& request() const { return request_; }

  struct Outcome {
    std::optional<ItemResult> result;  // the answer, cut at the first stop string
    bool stopped = false;              // it ended at a stop string (or was cancelled)
    std::string error;                 // when there is no result: why (an engine failure)
  };
  // Waits until the job is done or `deadline` passes; the answer's text so far goes to `text`
  // (streaming: only what lies before any stop string). True when done.
  bool wait(std::chrono::steady_clock::time_point deadline, std::string* text = nullptr);
  // Waits until the text grows past `known` bytes, the job ends or `deadline` passes.
  void wait_for_more(size_t known, std::chrono::steady_clock::time_point deadline);
  Outcome outcome() const;  // once done
  void cancel();            // the client is gone or timed out

  // Engine thread.
  bool cancelled() const;
  void finish(Outcome outcome);

 private:
  bool on_text(const std::string& text);  // the ItemRequest's on_text

  QuestionItem item_;
  ItemRequest request_;
  std::vector<std::string> stop_;
  std::vector<std::unique_ptr<MediaStore::Lease>> leases_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::string text_;  // before the first stop string
  bool stop_seen_ = false;
  bool cancelled_ = false;
  bool done_ = false;
  Outcome outcome_;
};

// What /metrics shows; a copy taken under the scheduler's lock.
struct SchedulerSnapshot {
  size_t queued = 0;         // waiting for a round
  size_t running = 0;        // in the current round
  size_t answered = 0;       // jobs finished with an answer
  size_t failed = 0;         // jobs finished with an engine error
  size_t generated_tokens = 0;
  size_t prompt_tokens = 0;
  size_t cached_prompt_tokens = 0;
  size_t prefix_cache_hits = 0;  // answered jobs whose frame prefix another job's work had evaluated
  size_t images_encoded = 0;
  size_t decode_calls = 0;       // engine batches of questions
  size_t prefix_evaluations = 0;
  double busy_seconds = 0;       // time spent in rounds
  size_t rounds = 0;             // begun
  size_t joined = 0;             // requests that joined a round under way
  size_t deferred = 0;           // requests that arrived during a round and could not join it
};

class Scheduler {
 public:
  static constexpr std::chrono::milliseconds kGatherWindow{30};

  // Loads the models (throws as Runner::load_models). `options.item_request` is the scheduler's.
  Scheduler(RunOptions options, size_t max_jobs);

  // Whether requests can be given to that model: loaded, and (72B) not given up after a failure.
  bool has_model(ModelSize size) const { return size == ModelSize::k7B ? has_7b_.load() : has_72b_.load(); }

  // Queues `job`; false when max_jobs are queued or running (the caller answers 429), or after stop().
  bool submit(const std::shared_ptr<ServeJob>& job);
  // Answers rounds until stop() and nothing is left.
  void run();
  void stop();
  SchedulerSnapshot snapshot() const;

 private:
  void answer_round(std::vector<std::shared_ptr<ServeJob>> round);
  // Moves the queue's jobs into running_ (finishing those cancelled meanwhile); under mutex_.
  std::vector<std::shared_ptr<ServeJob>> take_queued();
  // LateItems for the round under way.
  std::vector<const QuestionItem*> take_late();
  void decline(const QuestionItem& item);

  std::unique_ptr<Runner> runner_;  // engine thread only (after construction)
  std::atomic<bool> has_7b_{false}, has_72b_{false};
  const size_t max_jobs_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<ServeJob>> queue_;
  std::map<size_t, std::shared_ptr<ServeJob>> running_;  // by item index, for the runner's item_request
  size_t declined_ = 0;  // jobs of this round sent back to the queue's front: none joins the round after
  bool stopping_ = false;
  SchedulerSnapshot totals_;
};

}  // namespace drivevqa
