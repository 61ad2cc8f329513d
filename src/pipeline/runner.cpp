#include "pipeline/runner.h"

#include <spdlog/spdlog.h>

#include "lora/lora_convert.h"
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
  // The shared prefix in the session's sequence 0: its key (text + image files), its tokens, and
  // the position after it. An empty key: nothing reusable in the session.
  std::string prefix_key;
  std::unique_ptr<EncodedPrompt> prefix;
  llama_pos prefix_end = 0;
  bool prefix_in_session = false;
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
    ModelFiles files = resolve_model(dir, options_.sources);
    const std::optional<std::filesystem::path>& lora = size == ModelSize::k7B ? options_.lora_7b : options_.lora_72b;
    if (lora) files = with_lora(files, *lora, options_.sources);
    loaded->model = Model::load(files, options_.engine);
    slot = std::move(loaded);
  }
  return *slot;
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

  std::string kb_context;
  if (options_.kb && options_.rag_mode != RagMode::kOff) {
    if (options_.rag_mode == RagMode::kOverride) {
      const auto known = options_.kb->exact(item.scene_token, item.frame_token, item.question);
      if (known && !known->answer.empty()) {
        ++counters_.kb_answers;
        ItemResult r;
        r.subtask = subtask;
        r.routed = routed;
        r.model_used = "kb";
        r.answer = known->answer;
        return r;
      }
    }
    kb_context = kb_context_block(options_.kb->retrieve(item.scene_token, item.frame_token, item.question, options_.kb_topk));
  }

  QuestionItem usable;  // what the prompt needs: the question and the images that decoded
  usable.question = item.question;
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

  const std::string text = render_chatml(build_item_prompt(options_.prompts, subtask, usable, kb_context, options_.layout));
  std::string image_key;
  for (const CameraImage& camera : usable.images) image_key += camera.path.string() + "\n";
  if (!options_.dump_prompts_dir.empty()) {
    char name[32];
    std::snprintf(name, sizeof name, "%06zu.txt", item.index);
    write_file_atomic(options_.dump_prompts_dir / name, text);
  }
  GenerationParams params = options_.generation;
  params.max_new_tokens = token_budget(options_.prompts, subtask);
  if (options_.max_new_tokens_cap > 0) params.max_new_tokens = std::min(params.max_new_tokens, options_.max_new_tokens_cap);
  params.seed = options_.generation.seed + static_cast<uint32_t>(item.index);  // order-independent sampling

  ItemResult result;
  result.subtask = subtask;
  result.routed = routed;
  const ModelSize target = available(routed);
  if (target == ModelSize::k7B) {
    LoadedModel& model = load(ModelSize::k7B);  // a 7B model that cannot load ends the run
    try {
      return with_answer(result, "7B", generate_with(model, text, images, image_key, params));
    } catch (const ModelError& e) {
      return error_result(subtask, routed, e.what());
    } catch (const std::bad_alloc&) {
      return error_result(subtask, routed, "out of memory while answering with the 7B model");
    }
  }
  if (model_72b_failure_.empty()) {
    try {
      return with_answer(result, "72B", generate_with(load(ModelSize::k72B), text, images, image_key, params));
    } catch (const ModelError& e) {
      give_up_72b(e.what());
    } catch (const std::bad_alloc&) {
      give_up_72b("out of memory");
    }
  }
  if (!options_.fallback_72b_to_7b || !options_.model_7b) {
    return error_result(subtask, routed, "the 72B model is unavailable: " + model_72b_failure_);
  }
  try {
    return with_answer(result, "7B_fallback", generate_with(load(ModelSize::k7B), text, images, image_key, params));
  } catch (const std::exception& e) {
    return error_result(subtask, routed, std::string("the 7B fallback failed too: ") + e.what());
  }
}

ItemResult Runner::with_answer(ItemResult result, const char* model_used, const Generation& generation) {
  result.model_used = model_used;
  result.answer = generation.text;
  result.generated_tokens = generation.tokens.size();
  counters_.generated_tokens += generation.tokens.size();
  return result;
}

Generation Runner::generate_with(LoadedModel& loaded, const std::string& text, const std::vector<const RgbImage*>& images,
                                 const std::string& image_key, const GenerationParams& params) {
  // Everything up to the last image marker is the frame's prefix (system turn and images, in the
  // shared layout); it is tokenized, encoded and evaluated once while consecutive questions share it.
  // The chunks are the same as those of the whole text, so the answer equals a fresh evaluation's.
  const size_t marker = text.rfind(kImageMarker);
  const size_t cut = options_.layout == PromptLayout::kShared && marker != std::string::npos ? marker + kImageMarker.size() : 0;
  const std::string prefix_text = text.substr(0, cut);
  const std::string key = prefix_text + '\0' + image_key;
  const std::vector<const RgbImage*> no_images;
  if (loaded.prefix_key != key) {
    const size_t encodes_before = loaded.embeddings.encodes();
    loaded.prefix = std::make_unique<EncodedPrompt>(encode(*loaded.model, tokenize(*loaded.model, prefix_text, cut ? images : no_images), &loaded.embeddings));
    counters_.images_encoded += loaded.embeddings.encodes() - encodes_before;
    loaded.prefix_key = key;
    loaded.prefix_in_session = false;
  }
  const size_t encodes_before = loaded.embeddings.encodes();
  const EncodedPrompt suffix = encode(*loaded.model, tokenize(*loaded.model, text.substr(cut), cut ? no_images : images, cut == 0),
                                      &loaded.embeddings);
  counters_.images_encoded += loaded.embeddings.encodes() - encodes_before;

  const int needed = static_cast<int>(loaded.prefix->prompt.token_count() + suffix.prompt.token_count()) + params.max_new_tokens + 1;
  if (!loaded.session || loaded.session->options().n_ctx < needed) {
    SessionOptions session_options;
    session_options.kv_type = options_.kv_type;
    // Room for longer questions of the same frame, so that the prefix is not evaluated again.
    session_options.n_ctx = (needed + 1024 + 1023) / 1024 * 1024;
    loaded.session.reset();
    loaded.session = std::make_unique<Session>(*loaded.model, session_options);
    loaded.prefix_in_session = false;
  }
  Session& session = *loaded.session;
  if (!loaded.prefix_in_session) {
    session.clear();
    loaded.prefix_end = cut ? session.evaluate(*loaded.prefix, 0, 0, false) : 0;
    loaded.prefix_in_session = true;
    counters_.prompt_tokens += loaded.prefix->prompt.token_count();
    counters_.prefix_evaluations += cut ? 1 : 0;
  } else {
    session.truncate(0, loaded.prefix_end);  // drop the previous question and its answer
  }
  const llama_pos n_past = session.evaluate(suffix, 0, loaded.prefix_end, true);
  counters_.prompt_tokens += suffix.prompt.token_count();
  return session.generate(0, n_past, params);
}

}  // namespace drivevqa
