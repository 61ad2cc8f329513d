// The run stage: answers routed, prompted items with the 7B and/or 72B model.
//
// What must hold: every item gets exactly one result, in input order; an item that cannot be
// answered gets an error answer and the run goes on; a frame's images are decoded and encoded once
// per model while its items are answered.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "convert/model_source.h"
#include "dataset/question_file.h"
#include "kb/kb_index.h"
#include "engine/answer.h"
#include "prompt/task_prompts.h"
#include "route/route.h"

namespace drivevqa {

// Error answers start with this, so that users and tools can find them.
inline constexpr std::string_view kErrorAnswerPrefix = "[drivevqa error] ";

struct ItemResult {
  Subtask subtask = Subtask::kPerceptionMcq;
  ModelSize routed = ModelSize::k7B;
  std::string model_used;   // "7B", "72B", "7B_fallback"; empty when no model ran
  std::string answer;
  size_t generated_tokens = 0;
  bool is_error = false;
};

enum class RagMode { kOff, kHint, kOverride };

struct RunOptions {
  std::optional<std::filesystem::path> model_7b;
  std::optional<std::filesystem::path> model_72b;
  std::optional<std::filesystem::path> lora_7b;   // PEFT adapter folders (or roots of checkpoint-N)
  std::optional<std::filesystem::path> lora_72b;
  EngineOptions engine;
  ModelSourceOptions sources;   // how Hugging Face folders are converted and cached
  RoutingTable routes;
  PromptSet prompts;
  GenerationParams generation;  // max_new_tokens is replaced per subtask
  int max_new_tokens_cap = 0;   // > 0: no answer longer than this, whatever the subtask budget
  ggml_type kv_type = GGML_TYPE_F16;
  bool fallback_72b_to_7b = true;  // a failing 72B model is replaced by the 7B model
  std::filesystem::path dump_prompts_dir;  // non-empty: the exact chat text of each item is written there
  PromptLayout layout = PromptLayout::kShared;  // kShared: a frame's images are a prefix evaluated once
  std::shared_ptr<const KbIndex> kb;       // with rag_mode hint or override
  RagMode rag_mode = RagMode::kOff;
  int kb_topk = 4;
};

// The route of an item: its subtask and the model the table assigns to it.
std::pair<Subtask, ModelSize> route_item(const RoutingTable& routes, const QuestionItem& item);

struct RunCounters {
  size_t images_decoded = 0;
  size_t images_encoded = 0;
  size_t prompt_tokens = 0;      // evaluated into the KV cache (shared prefixes once each)
  size_t prefix_evaluations = 0;  // shared prefixes (system turn + a frame's images) evaluated
  size_t generated_tokens = 0;
  size_t kb_answers = 0;   // override: answered from the knowledge base, no model run
};

class Runner {
 public:
  explicit Runner(RunOptions options);
  ~Runner();


  // Answers one item. A 72B failure (load, context, allocation, decoding) sends the item to the 7B
  // model when fallback is on, else gives it an error answer; a failed 72B model is not retried.
  // Throws only when the 7B model cannot load, which ends the run.
  ItemResult answer(const QuestionItem& item);

  const RunCounters& counters() const { return counters_; }

 private:
  struct LoadedModel;
  ModelSize available(ModelSize routed) const;
  LoadedModel& load(ModelSize size);
  void give_up_72b(const std::string& cause);
  Generation generate_with(LoadedModel& loaded, const std::string& text, const std::vector<const RgbImage*>& images,
                           const std::string& image_key, const GenerationParams& params);
  ItemResult with_answer(ItemResult result, const char* model_used, const Generation& generation);
  std::shared_ptr<const RgbImage> decoded(const std::filesystem::path& path, std::string& warning);

  RunOptions options_;
  std::unique_ptr<LoadedModel> model_7b_;
  std::unique_ptr<LoadedModel> model_72b_;
  std::string model_72b_failure_;  // why the 72B model could not load; it is not retried
  std::vector<std::pair<std::filesystem::path, std::shared_ptr<const RgbImage>>> image_cache_;  // recent frames
  RunCounters counters_;
};

}  // namespace drivevqa
