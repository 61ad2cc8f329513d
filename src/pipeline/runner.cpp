#include "pipeline/runner.h"

#include <spdlog/spdlog.h>

#include "util/error.h"
#include "util/files.h"

namespace drivevqa {
namespace {

// Two frames' worth of cameras: enough to keep a frame's images while its questions are answered.
constexpr size_t kCachedImages = 12;

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

struct Runner::LoadedModel {
  std::unique_ptr<Model> model;
  EmbeddingCache embeddings{kCachedImages};
  std::unique_ptr<Session> session;
};

Runner::Runner(RunOptions options) : options_(std::move(options)) {
  if (!options_.model_7b && !options_.model_72b) throw UsageError("no model given: pass --model_7b and/or --model_72b");
}

Runner::~Runner() = default;

std::pair<Subtask, ModelSize> route_item(const RoutingTable& routes, const QuestionItem& item) {
  const Subtask s = classify(item.category, item.question);
  return {s, routes.model_for(s)};
}

Runner::LoadedModel& Runner::load(ModelSize size) {
  std::unique_ptr<LoadedModel>& slot = size == ModelSize::k7B ? model_7b_ : model_72b_;
  if (!slot) {
    const std::filesystem::path& dir = size == ModelSize::k7B ? *options_.model_7b : *options_.model_72b;
    spdlog::info("loading the {} model from {}", model_size_name(size), dir.string());
    auto loaded = std::make_unique<LoadedModel>();
    loaded->model = Model::load(find_model_files(dir), options_.engine);
    slot = std::move(loaded);
  }
  return *slot;
}

Runner::LoadedModel& Runner::model_for(ModelSize size, std::string& used_name) {
  // With one model given, every item runs on it.
  if (size == ModelSize::k72B && !options_.model_72b) size = ModelSize::k7B;
  if (size == ModelSize::k7B && !options_.model_7b) size = ModelSize::k72B;
  used_name = std::string(model_size_name(size));
  if (size == ModelSize::k72B && options_.model_7b && options_.fallback_72b_to_7b) {
    if (model_72b_failure_.empty()) {
      try {
        return load(size);
      } catch (const ModelError& e) {
        model_72b_failure_ = e.what();
        spdlog::warn("the 72B model failed ({}); its items go to the 7B model", model_72b_failure_);
      }
    }
    used_name = "7B_fallback";
    return load(ModelSize::k7B);
  }
  return load(size);
}

std::shared_ptr<const RgbImage> Runner::decoded(const std::filesystem::path& path, std::string& warning) {
  for (const auto& [p, image] : image_cache_) {
    if (p == path) return image;
  }
  try {
    auto image = std::make_shared<const RgbImage>(load_image_file(path));
    ++counters_.images_decoded;
    if (image_cache_.size() >= kCachedImages) image_cache_.erase(image_cache_.begin());
    image_cache_.emplace_back(path, image);
    return image;
  } catch (const InputError& e) {
    warning = e.what();
    return nullptr;
  }
}

ItemResult Runner::answer(const QuestionItem& item) {
  const auto [subtask, routed] = route_item(options_.routes, item);
  for (const std::string& w : item.warnings) spdlog::warn("item {}: {}", item.index, w);
  if (!item.problem.empty()) return error_result(subtask, routed, item.problem);

  QuestionItem usable = item;
  usable.images.clear();
  std::vector<std::shared_ptr<const RgbImage>> held;  // keeps the pixels alive while this item runs
  std::vector<const RgbImage*> images;
  for (const CameraImage& camera : item.images) {
    std::string warning;
    if (auto image = decoded(camera.path, warning)) {
      usable.images.push_back(camera);
      images.push_back(image.get());
      held.push_back(std::move(image));
    } else {
      spdlog::warn("item {}: {} image skipped: {}", item.index, camera.camera, warning);
    }
  }
  if (images.empty()) return error_result(subtask, routed, "item has no readable image");

  ItemResult result;
  result.subtask = subtask;
  result.routed = routed;
  LoadedModel& loaded = model_for(routed, result.model_used);
  const std::string text = render_chatml(build_item_prompt(options_.prompts, subtask, usable));
  if (!options_.dump_prompts_dir.empty()) {
    char name[32];
    std::snprintf(name, sizeof name, "%06zu.txt", item.index);
    write_file_atomic(options_.dump_prompts_dir / name, text);
  }

  GenerationParams params = options_.generation;
  params.max_new_tokens = token_budget(options_.prompts, subtask);
  if (options_.max_new_tokens_cap > 0) params.max_new_tokens = std::min(params.max_new_tokens, options_.max_new_tokens_cap);
  params.seed = options_.generation.seed + static_cast<uint32_t>(item.index);  // order-independent sampling

  const size_t encodes_before = loaded.embeddings.encodes();
  EncodedPrompt encoded = encode(*loaded.model, tokenize(*loaded.model, text, images), &loaded.embeddings);
  counters_.images_encoded += loaded.embeddings.encodes() - encodes_before;
  const int needed = static_cast<int>(encoded.prompt.token_count()) + params.max_new_tokens + 1;
  if (!loaded.session || loaded.session->options().n_ctx < needed) {
    SessionOptions session_options;
    session_options.kv_type = options_.kv_type;
    session_options.n_ctx = (needed + 1023) / 1024 * 1024;
    loaded.session.reset();
    loaded.session = std::make_unique<Session>(*loaded.model, session_options);
  }
  Session& session = *loaded.session;
  session.clear();
  const llama_pos n_past = session.evaluate(encoded, 0, 0, true);
  const Generation generation = session.generate(0, n_past, params);
  counters_.prompt_tokens += encoded.prompt.token_count();
  counters_.generated_tokens += generation.tokens.size();
  result.answer = generation.text;
  result.generated_tokens = generation.tokens.size();
  return result;
}

}  // namespace drivevqa
