// ask: one question about a set of camera images, answered with one model.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "cli/flag_limits.h"
#include "convert/model_source.h"
#include "engine/answer.h"
#include "engine/rpc_devices.h"
#include "lora/lora_convert.h"
#include "modelgen/random_model.h"
#include "pipeline/frame_close_ups.h"
#include "pipeline/kb_examples.h"
#include "pipeline/frame_markers.h"
#include "visual/object_crop.h"
#include "engine/image.h"
#include "prompt/chat_prompt.h"
#include "prompt/task_prompts.h"
#include "route/route.h"
#include "util/error.h"
#include "util/stopwatch.h"
#include "vote/self_consistency.h"
#include "util/path_roles.h"

namespace drivevqa {
namespace {

struct AskArgs {
  std::string model;
  std::vector<std::string> images;
  std::vector<std::string> cameras;
  std::string question;
  std::string system;  // when not given: the built-in prompt for the answer format ("" given: no system turn)
  CLI::Option* system_given = nullptr;
  std::string category;
  std::string answer_format = "structured", mcq_format = "letter";
  EngineOptions engine;
  CLI::Option* n_gpu_layers_given = nullptr;
  std::string rpc;
  ModelSourceOptions sources;
  std::string outtype = "bf16";
  std::string lora;
  std::string lora_mode = "auto";
  GenerationParams generation;
  std::string flash_attn = "auto";
  bool show_prompt = false;
  bool show_tokens = false;
  bool object_crops = false;
  SelfConsistency self_consistency;
  int crop_size = kDefaultCropSize;
  std::vector<std::string> history;  // earlier frames, most recent first: each the history cameras' files
  std::vector<std::string> history_cameras = {"CAM_FRONT"};
  int few_shot = 0;
  std::string kb_file, kb_index;
  bool draw_markers = false;
};

// --cameras, or the Track 1 order (then IMAGE_<n>) when not given; one name per image.
std::vector<std::string> camera_names(const AskArgs& a) {
  std::vector<std::string> cameras = a.cameras;
  if (cameras.empty()) {
    for (size_t i = 0; i < a.images.size(); ++i) {
      cameras.push_back(i < kCameraOrder.size() ? std::string(kCameraOrder[i]) : "IMAGE_" + std::to_string(i + 1));
    }
  }
  if (cameras.size() != a.images.size()) {
    throw UsageError("--cameras names " + std::to_string(cameras.size()) + " cameras for " +
                     std::to_string(a.images.size()) + " images");
  }
  return cameras;
}

// With --draw_markers: the objects the question names marked on their camera images, as run draws
// them; `image_ptrs` (one per camera) then points at the marked copies, which the result owns.
FrameMarkers draw_ask_markers(const AskArgs& a, const std::vector<std::string>& cameras, std::vector<const RgbImage*>& image_ptrs) {
  if (!a.draw_markers) return {};
  std::vector<CameraImage> files;
  for (size_t i = 0; i < cameras.size(); ++i) files.push_back({cameras[i], a.images[i]});
  const MarkerChoice chosen = choose_markers(a.question, files);
  RunCounters counters;
  FrameMarkers markers = draw_frame_markers(chosen.marked, files, image_ptrs, counters);
  for (const std::vector<std::string>& skipped : {chosen.skipped, markers.skipped}) {
    for (const std::string& why : skipped) spdlog::warn("no marker for {}", why);
  }
  return markers;
}

// --history: the earlier frames' images, loaded oldest first (the prompt's order) with the views
// that label them as run does ("CAM_FRONT, 1.0 s earlier").
struct AskHistory {
  std::vector<RgbImage> images;
  std::vector<HistoryView> views;
};

AskHistory load_history(const AskArgs& a) {
  if (a.history.size() > kMaxHistoryFrames) {
    throw UsageError("--history is given " + std::to_string(a.history.size()) + " times; at most " +
                     std::to_string(kMaxHistoryFrames) + " earlier frames");
  }
  std::vector<std::vector<std::string>> frames;  // each frame's files, checked before any is read
  for (const std::string& given : a.history) {
    std::vector<std::string> files;
    for (size_t at = 0, end = 0; end != std::string::npos; at = end + 1) {
      end = given.find(',', at);
      files.push_back(given.substr(at, end == std::string::npos ? std::string::npos : end - at));
    }
    if (files.size() != a.history_cameras.size()) {
      throw UsageError("--history " + given + ": " + std::to_string(files.size()) + " images for " +
                       std::to_string(a.history_cameras.size()) + " --history_cameras");
    }
    frames.push_back(std::move(files));
  }
  AskHistory h;
  for (size_t k = frames.size(); k-- > 0;) {  // given most recent first, shown oldest first
    for (const std::string& file : frames[k]) h.images.push_back(load_image_file(file));
    h.views.push_back({kKeyFrameSeconds * static_cast<double>(k + 1), a.history_cameras});
  }
  return h;
}

// --few_shot: the knowledge base's most similar question/answer pairs of the question's subtask,
// as run shows them ("" when off).
std::string ask_examples(const AskArgs& a) {
  if (a.few_shot == 0) return "";
  if (a.kb_file.empty()) throw UsageError("--few_shot needs --kb_file: the examples come from the knowledge base");
  PathRoles paths;  // the index is written: never over the KB file it reads
  paths.read("--kb_file", a.kb_file);
  paths.write("--kb_index", a.kb_index);
  paths.check();
  const auto kb = open_kb_index(a.kb_file, a.kb_index, cache_home(a.sources));
  return few_shot_block(few_shot_examples(*kb, classify(a.category, a.question), "", "", a.question, a.few_shot));
}

// --self_consistency: the samples (and for closed questions the main answer) decoded together from
// one evaluated prompt, and the answer their vote chooses (vote/self_consistency.h).
void print_voted_answer(const Model& model, const std::string& text, std::span<const RgbImage* const> images,
                        const AskArgs& a, AnswerKind kind) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Generation> answers = answer_prompt_group(model, text, images, answers_to_decode(a.generation, kind, a.self_consistency));
  std::vector<std::string> texts;
  size_t tokens = 0;
  for (Generation& g : answers) {
    tokens += g.tokens.size();
    texts.push_back(std::move(g.text));
  }
  const Vote vote = choose_answer(kind, texts);
  std::printf("%s\n", vote.answer.c_str());
  spdlog::info("self-consistency over {} answers ({} generated tokens, {:.2f} s): {}", texts.size(), tokens,
               seconds_since(t0), vote_json(vote, kind));
}

// --rpc: the servers connected before anything is read, all layers on them unless --n_gpu_layers says.
void connect_rpc_servers(AskArgs& a) {
  if (a.rpc.empty()) return;
  if (a.n_gpu_layers_given->count() == 0) {
    a.engine.n_gpu_layers = -1;
  } else if (a.engine.n_gpu_layers == 0) {
    throw UsageError("--rpc puts the text model's layers on the servers, --n_gpu_layers 0 keeps them all here");
  }
  a.engine.rpc_servers = parse_rpc_servers(a.rpc);
  rpc_devices(a.engine.rpc_servers);
}

void ask(AskArgs& a) {
  connect_rpc_servers(a);
  const std::vector<std::string> cameras = camera_names(a);
  const std::string examples = ask_examples(a);
  const AskHistory history = load_history(a);
  std::vector<RgbImage> images;
  for (const std::string& path : a.images) images.push_back(load_image_file(path));
  std::vector<const RgbImage*> image_ptrs;
  for (const RgbImage& image : images) image_ptrs.push_back(&image);
  const FrameMarkers markers = draw_ask_markers(a, cameras, image_ptrs);  // before the close-ups join image_ptrs
  // Close-ups of the objects the question names, after the cameras (as run places them).
  FrameCloseUps close_ups;
  if (a.object_crops) {
    std::vector<CameraImage> files;
    for (size_t i = 0; i < cameras.size(); ++i) files.push_back({cameras[i], a.images[i]});
    const std::vector<ObjectRef> named = object_refs(a.question);
    RunCounters counters;
    close_ups = cut_close_ups(std::vector<CloseUpRequest>{{0, named}}, files, a.crop_size, counters);
    image_ptrs.insert(image_ptrs.end(), close_ups.of[0].begin(), close_ups.of[0].end());
  }

  // Earlier frames first, oldest first, as run shows them.
  std::vector<const RgbImage*> earlier;
  for (const RgbImage& image : history.images) earlier.push_back(&image);
  image_ptrs.insert(image_ptrs.begin(), earlier.begin(), earlier.end());

  a.sources.outtype = parse_weight_type(a.outtype);
  a.engine.flash_attention = a.flash_attn == "on"    ? FlashAttention::kOn
                             : a.flash_attn == "off" ? FlashAttention::kOff
                                                     : FlashAttention::kAuto;
  ModelFiles files = resolve_model(a.model, a.sources);
  if (!a.lora.empty()) files = with_lora(files, a.lora, a.sources, lora_mode_from_name(a.lora_mode));
  const AnswerKind kind = answer_shape(classify(a.category, a.question), a.question).kind;
  const size_t answers = answers_to_decode(a.generation, kind, a.self_consistency).size();
  // The examples' bytes bound their tokens: room beyond the planned question text.
  a.engine.planned_context = planned_answer_context(image_ptrs, a.engine, a.generation.max_new_tokens * static_cast<int>(answers) +
                                                                              static_cast<int>(examples.size()));
  a.engine.planned_sequences = static_cast<int>(answers) + 1;
  const std::unique_ptr<Model> model = Model::load(files, a.engine);
  const AnswerFormat format = answer_format_from_name(a.answer_format);
  const McqFormat mcq_format = a.mcq_format == "letter_text" ? McqFormat::kLetterText : McqFormat::kLetter;
  const PromptSet prompts = default_prompts(a.generation.max_new_tokens, format);
  std::string user = history_block(history.views) + image_block(cameras) + examples +
                     (a.object_crops ? close_up_block(close_ups.shown[0]) : "") + a.question;
  if (format != AnswerFormat::kFree) {
    const AnswerShape shape = answer_shape(classify(a.category, a.question), a.question);
    if (const std::string& line = answer_instruction(prompts, shape, mcq_format); !line.empty()) user += "\n" + line;
    if (format == AnswerFormat::kStructured) a.generation.grammar = answer_grammar(shape, mcq_format);
  }
  const std::string text = render_chatml({a.system_given->count() > 0 ? a.system : prompts.system, user});
  if (a.show_prompt) std::fprintf(stderr, "%s\n", text.c_str());
  if (answers > 1) return print_voted_answer(*model, text, image_ptrs, a, kind);
  const Answer answer = answer_prompt(*model, text, image_ptrs, a.generation);
  std::printf("%s\n", answer.generation.text.c_str());
  if (a.show_tokens) {
    std::string ids;
    for (llama_token t : answer.generation.tokens) ids += std::to_string(t) + " ";
    std::fprintf(stderr, "tokens: %s\n", ids.c_str());
  }
  spdlog::info("{} prompt tokens, {} generated; encode {:.2f} s, prompt {:.2f} s, generate {:.2f} s",
               answer.prompt_tokens, answer.generation.tokens.size(), answer.timings.encode_seconds,
               answer.timings.prompt_seconds, answer.timings.generate_seconds);
}

}  // namespace

CommandAction add_ask_command(CLI::App& app) {
  auto a = std::make_shared<AskArgs>();
  CLI::App* cmd = app.add_subcommand("ask", "Answer one question about camera images");
  cmd->add_option("--model", a->model,
                  "Model: a folder with model.gguf + mmproj.gguf, a Hugging Face folder, or a Hugging Face cache root")
      ->required();
  cmd->add_option("--cache_dir,--cache-dir", a->sources.cache_dir, "Where converted Hugging Face models are kept");
  cmd->add_option("--lora", a->lora, "PEFT LoRA adapter folder (or a root of checkpoint-N folders: the largest N)");
  cmd->add_option("--lora_mode,--lora-mode", a->lora_mode,
                  "The adapter's language-model pairs: merged (into a cached copy of the text weights), runtime (beside "
                  "the base weights at every token), or auto: merged when the base's text weights are f32/f16/bf16, as run")
      ->capture_default_str()->check(CLI::IsMember({"auto", "merged", "runtime"}));
  cmd->add_option("--outtype", a->outtype, "Weight type when a Hugging Face folder is converted: f32, f16, bf16, q8_0")
      ->capture_default_str()->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0"}));
  cmd->add_option("--images", a->images, "Image files (JPEG or PNG), comma-separated, in camera order")
      ->required()->delimiter(',');
  cmd->add_option("--cameras", a->cameras, "Camera names for the images (default: the Track 1 order)")
      ->delimiter(',');
  cmd->add_option("question", a->question, "The question")->required();
  a->system_given = cmd->add_option("--system", a->system, "System prompt (default: the built-in driving prompt; \"\": none)");
  cmd->add_option("--category", a->category, "The question's Track 1 category (perception, prediction, planning, ...), "
                  "for its answer shape");
  cmd->add_option("--answer_format,--answer-format", a->answer_format,
                  "structured: option letters and Yes./No. answers enforced while decoding, as in run; prompted: asked for "
                  "only; free: no shape")
      ->capture_default_str()->check(CLI::IsMember({"structured", "prompted", "free"}));
  cmd->add_option("--mcq_format,--mcq-format", a->mcq_format, "letter or letter_text, as in run")
      ->capture_default_str()->check(CLI::IsMember({"letter", "letter_text"}));
  cmd->add_option("--max_new_tokens,--max-new-tokens", a->generation.max_new_tokens, "Token budget of the answer")
      ->capture_default_str()->check(CLI::Range(1, 1 << 20));
  cmd->add_flag("--do_sample,--do-sample", a->generation.do_sample, "Sample instead of greedy decoding");
  cmd->add_option("--seed", a->generation.seed, "Sampling seed")->capture_default_str();
  cmd->add_option("--temperature", a->generation.temperature, "Sampling temperature")->capture_default_str()
      ->check(finite_range(0, 100));
  cmd->add_option("--top_p,--top-p", a->generation.top_p, "Sampling nucleus")->capture_default_str()->check(finite_range(0, 1));
  cmd->add_option("--top_k,--top-k", a->generation.top_k, "Sampling top-k (0: off)")->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("-t,--threads", a->engine.n_threads, "CPU threads (0: all)")->capture_default_str()
      ->check(thread_count_check());
  a->n_gpu_layers_given = cmd->add_option("--n_gpu_layers,--n-gpu-layers", a->engine.n_gpu_layers,
                                          "Layers offloaded to the GPU and --rpc servers (-1: all; with --rpc the default)")
                              ->capture_default_str();
  cmd->add_option("--rpc", a->rpc,
                  "llama.cpp rpc-server processes (host:port, comma-separated) that take the text model's layers, as "
                  "run --rpc; trusted networks only: the protocol has no authentication or encryption");
  cmd->add_option("--flash_attn,--flash-attn", a->flash_attn, "Flash attention: auto, on or off")
      ->capture_default_str()->check(CLI::IsMember({"auto", "on", "off"}));
  cmd->add_option("--image_max_tokens,--image-max-tokens", a->engine.image_max_tokens,
                  "Most LLM tokens per image (0: the model's default)");
  cmd->add_option("--image_min_tokens,--image-min-tokens", a->engine.image_min_tokens,
                  "Fewest LLM tokens per image (0: the model's default)");
  cmd->add_option("--self_consistency,--self-consistency", a->self_consistency.samples,
                  "Sample N answers and vote, as run does (0 or 1: off)")
      ->capture_default_str()->check(CLI::Range(0, kMaxSelfConsistency));
  cmd->add_option("--sc_temperature,--sc-temperature", a->self_consistency.temperature, "Temperature of the samples")
      ->capture_default_str()->check(finite_range(0.01, 10));
  cmd->add_option("--sc_top_p,--sc-top-p", a->self_consistency.top_p, "Top-p of the samples")
      ->capture_default_str()->check(finite_range(0.01, 1));
  cmd->add_flag("--object_crops,--object-crops", a->object_crops,
                "Show each object the question names (<cN,CAM,x,y>) as a marked close-up after the images, as run does");
  cmd->add_option("--crop_size,--crop-size", a->crop_size, "Side of an object close-up, in pixels of the camera image")
      ->capture_default_str()->check(CLI::Range(28, 4096));
  cmd->add_flag("--draw_markers,--draw-markers", a->draw_markers,
                "Draw a marker on each object the question names (<cN,CAM,x,y>) on its camera image, as run does");
  cmd->add_option("--history", a->history,
                  "An earlier key frame's images: the --history_cameras' files, comma-separated; repeatable, the most "
                  "recent first (0.5 s earlier, then 1.0 s, ...), as a dataset's history_frames. Shown oldest first "
                  "before the current images, as run --history_frames shows them");
  cmd->add_option("--history_cameras,--history-cameras", a->history_cameras,
                  "Cameras of each --history frame's images, comma-separated")
      ->capture_default_str()->delimiter(',')->check(CLI::IsMember(std::vector<std::string>(kCameraOrder.begin(), kCameraOrder.end())));
  cmd->add_option("--few_shot,--few-shot", a->few_shot,
                  "Show the K most similar question/answer pairs of the question's subtask from --kb_file as text-only "
                  "examples, as run does")
      ->capture_default_str()->check(CLI::Range(0, kMaxFewShot));
  cmd->add_option("--kb_file,--kb-file", a->kb_file, "Knowledge base JSON, for --few_shot");
  cmd->add_option("--kb_index,--kb-index", a->kb_index, "Where its index is kept (default: the cache, as run)");
  cmd->add_flag("--show_prompt,--show-prompt", a->show_prompt, "Print the chat text sent to the model on stderr");
  cmd->add_flag("--show_tokens,--show-tokens", a->show_tokens, "Print the generated token ids on stderr");
  return [a] { ask(*a); };
}

}  // namespace drivevqa
