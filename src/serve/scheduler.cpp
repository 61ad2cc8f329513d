#include "serve/scheduler.h"

#include <spdlog/spdlog.h>

#include <set>

#include "util/stopwatch.h"

namespace drivevqa {
namespace {

// Where `text` may be cut for a client that sees it grow: before the first stop string, and
// before any end that could still become one, or that ends inside a UTF-8 character.
size_t settled_length(const std::string& text, const std::vector<std::string>& stop, bool* stop_found) {
  size_t end = text.size();
  *stop_found = false;
  for (const std::string& s : stop) {
    if (const size_t at = text.find(s); at != std::string::npos && at < end) {
      end = at;
      *stop_found = true;
    }
  }
  if (*stop_found) return end;
  for (const std::string& s : stop) {
    for (size_t n = std::min(s.size() - 1, text.size()); n > 0; --n) {
      if (text.compare(text.size() - n, n, s, 0, n) == 0) {
        end = std::min(end, text.size() - n);
        break;
      }
    }
  }
  // Back over continuation bytes to the last lead byte; keep it only if its character is whole.
  size_t lead = end;
  while (lead > 0 && (static_cast<unsigned char>(text[lead - 1]) & 0xC0) == 0x80) --lead;
  if (lead > 0) {
    const auto c = static_cast<unsigned char>(text[lead - 1]);
    const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (end - (lead - 1) < need) end = lead - 1;
  }
  return end;
}

}  // namespace

ServeJob::ServeJob(QuestionItem item, ItemRequest request, std::vector<std::string> stop,
                   std::vector<std::unique_ptr<MediaStore::Lease>> leases)
    : item_(std::move(item)), request_(std::move(request)), stop_(std::move(stop)), leases_(std::move(leases)) {
  request_.on_text = [this](const std::string& text) { return on_text(text); };
}

bool ServeJob::on_text(const std::string& text) {
  std::lock_guard lock(mutex_);
  bool stop_found = false;
  const size_t settled = settled_length(text, stop_, &stop_found);
  // Only growth of what was shown: an answer begun again (a 72B failure handed to the 7B model) is
  // not mixed into it; the stream then ends with an error (server.cpp).
  if (settled > text_.size() && text.compare(0, text_.size(), text_) == 0) {
    text_.assign(text, 0, settled);
    changed_.notify_all();
  }
  stop_seen_ = stop_seen_ || stop_found;
  return !stop_seen_ && !cancelled_;
}

bool ServeJob::wait(std::chrono::steady_clock::time_point deadline, std::string* text) {
  std::unique_lock lock(mutex_);
  changed_.wait_until(lock, deadline, [&] { return done_; });
  if (text) *text = text_;
  return done_;
}

void ServeJob::wait_for_more(size_t known, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  changed_.wait_until(lock, deadline, [&] { return done_ || text_.size() > known; });
}

ServeJob::Outcome ServeJob::outcome() const {
  std::lock_guard lock(mutex_);
  return outcome_;
}

void ServeJob::cancel() {
  std::lock_guard lock(mutex_);
  cancelled_ = true;
}

bool ServeJob::cancelled() const {
  std::lock_guard lock(mutex_);
  return cancelled_;
}

void ServeJob::finish(Outcome outcome) {
  std::lock_guard lock(mutex_);
  if (done_) return;
  if (outcome.result) {
    bool stop_found = false;
    std::string& answer = outcome.result->answer;
    const size_t cut = settled_length(answer, stop_, &stop_found);
    if (stop_found) answer.resize(cut);
    outcome.stopped = outcome.stopped || stop_found || stop_seen_;
    text_ = answer;
  }
  outcome_ = std::move(outcome);
  done_ = true;
  leases_.clear();  // the images may go once the answer is in
  changed_.notify_all();
}

Scheduler::Scheduler(RunOptions options, size_t max_jobs) : max_jobs_(max_jobs) {
  options.keep_models_loaded = true;  // requests for either model come at any time
  options.frames.whole_context = true;
  options.interleave_frames = true;
  options.item_request = [this](const QuestionItem& item) -> const ItemRequest* {
    std::lock_guard lock(mutex_);
    const auto it = running_.find(item.index);
    return it == running_.end() ? nullptr : &it->second->request();
  };
  runner_ = std::make_unique<Runner>(std::move(options));
  runner_->load_models();
  has_7b_ = runner_->has_model(ModelSize::k7B);
  has_72b_ = runner_->has_model(ModelSize::k72B);
}

bool Scheduler::submit(const std::shared_ptr<ServeJob>& job) {
  std::lock_guard lock(mutex_);
  if (stopping_ || queue_.size() + running_.size() >= max_jobs_) return false;
  queue_.push_back(job);
  totals_.queued = queue_.size();
  wake_.notify_one();
  return true;
}

void Scheduler::stop() {
  std::lock_guard lock(mutex_);
  stopping_ = true;
  wake_.notify_all();
}

SchedulerSnapshot Scheduler::snapshot() const {
  std::lock_guard lock(mutex_);
  return totals_;
}

void Scheduler::run() {
  size_t last_round = 0;  // requests in the round before
  auto last_end = std::chrono::steady_clock::now();
  for (;;) {
    std::vector<std::shared_ptr<ServeJob>> round;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      // The clients answered last in the round before are sending their next requests now: a
      // moment's wait lets them into this round instead of waiting a whole round for the next.
      wake_.wait_until(lock, last_end + kGatherWindow, [&] { return stopping_ || queue_.size() >= last_round; });
      if (queue_.empty()) return;  // stopping, and nothing is left
      declined_ = 0;
      round = take_queued();
    }
    last_round = round.size();
    if (!round.empty()) answer_round(std::move(round));
    last_end = std::chrono::steady_clock::now();
  }
}

std::vector<std::shared_ptr<ServeJob>> Scheduler::take_queued() {
  std::vector<std::shared_ptr<ServeJob>> taken;
  for (; !queue_.empty(); queue_.pop_front()) {
    const std::shared_ptr<ServeJob>& job = queue_.front();
    if (job->cancelled()) {
      job->finish({std::nullopt, true, "cancelled before it started"});
      continue;
    }
    running_[job->item().index] = job;
    taken.push_back(job);
  }
  totals_.queued = 0;
  totals_.running = running_.size();
  return taken;
}

std::vector<const QuestionItem*> Scheduler::take_late() {
  std::lock_guard lock(mutex_);
  if (declined_ > 0 || queue_.empty()) return {};
  std::vector<const QuestionItem*> items;
  for (const auto& job : take_queued()) items.push_back(&job->item());
  totals_.joined += items.size();  // less those declined
  return items;
}

void Scheduler::decline(const QuestionItem& item) {
  std::lock_guard lock(mutex_);
  const auto it = running_.find(item.index);
  if (it == running_.end()) return;
  // Ahead of what arrived since, in the order they were declined (they arrived in that order).
  queue_.insert(queue_.begin() + static_cast<std::ptrdiff_t>(declined_++), it->second);
  running_.erase(it);
  --totals_.joined;
  ++totals_.deferred;
  totals_.queued = queue_.size();
  totals_.running = running_.size();
}

void Scheduler::answer_round(std::vector<std::shared_ptr<ServeJob>> round) {
  const auto t0 = std::chrono::steady_clock::now();
  const RunCounters before = runner_->counters();
  SchedulerSnapshot base;  // the totals before the round; only this thread changes the fields it adds to
  {
    std::lock_guard lock(mutex_);
    ++totals_.rounds;
    base = totals_;
  }
  std::vector<const QuestionItem*> items;
  for (const auto& job : round) items.push_back(&job->item());
  std::set<size_t> finished;
  size_t answered = 0, failed = 0, generated = 0, prompt = 0, cached = 0;
  // The round's figures so far into the totals, before a job is finished: a client that has its
  // answer finds it counted in /metrics (a round that others join can last long).
  const auto count_round = [&] {
    const RunCounters& now = runner_->counters();
    const size_t evaluations = now.prefix_evaluations - before.prefix_evaluations;
    std::lock_guard lock(mutex_);
    totals_.answered = base.answered + answered;
    totals_.failed = base.failed + failed;
    totals_.generated_tokens = base.generated_tokens + generated;
    totals_.prompt_tokens = base.prompt_tokens + prompt;
    totals_.cached_prompt_tokens = base.cached_prompt_tokens + cached;
    totals_.prefix_cache_hits = base.prefix_cache_hits + (answered > evaluations ? answered - evaluations : 0);
    totals_.images_encoded = base.images_encoded + (now.images_encoded - before.images_encoded);
    totals_.decode_calls = base.decode_calls + (now.decode_calls - before.decode_calls);
    totals_.prefix_evaluations = base.prefix_evaluations + evaluations;
    totals_.busy_seconds = base.busy_seconds + seconds_since(t0);
  };
  const LateItems late{[this] { return take_late(); }, [this](const QuestionItem& item) { decline(item); }};
  try {
    runner_->answer_all(items, [&](const QuestionItem& item, ItemResult result) {
      // Only this thread changes running_ (take_late and decline run on it too).
      const std::shared_ptr<ServeJob>& job = running_.at(item.index);
      finished.insert(item.index);
      if (result.is_error) {
        ++failed;
        count_round();
        job->finish({std::nullopt, false, result.answer});
        return;
      }
      ++answered;
      generated += result.generated_tokens;
      prompt += result.prompt_tokens;
      cached += result.cached_prompt_tokens;
      count_round();
      job->finish({std::move(result), false, ""});
    }, &late);
  } catch (const std::exception& e) {
    spdlog::error("a round of {} requests failed: {}", round.size(), e.what());
    std::vector<std::shared_ptr<ServeJob>> unfinished;
    for (const auto& [index, job] : running_) {  // the round's, and those that joined it
      if (finished.count(index) == 0) unfinished.push_back(job);
    }
    failed += unfinished.size();
    count_round();
    for (const auto& job : unfinished) job->finish({std::nullopt, false, e.what()});
  }
  has_72b_ = runner_->has_model(ModelSize::k72B);  // a 72B model that failed is not offered again
  count_round();
  std::lock_guard lock(mutex_);
  running_.clear();
  totals_.running = 0;
}

}  // namespace drivevqa
