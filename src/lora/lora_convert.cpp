#include "lora/lora_convert.h"

#include <gguf.h>
#include <spdlog/spdlog.h>

#include "convert/content_key.h"
#include "convert/finite_check.h"
#include "lora/lora_merge.h"
#include "qwen25vl/gguf_stream_writer.h"
#include "qwen25vl/tensor_table.h"
#include "util/error.h"

namespace drivevqa {
namespace {

void write_text_adapter(const PeftAdapter& adapter, const std::vector<const LoraModule*>& modules,
                        const std::filesystem::path& path) {
  GgufStreamWriter w;
  gguf_set_val_str(w.kv(), "general.architecture", "qwen2vl");
  gguf_set_val_str(w.kv(), "general.type", "adapter");
  gguf_set_val_str(w.kv(), "adapter.type", "lora");
  gguf_set_val_f32(w.kv(), "adapter.lora.alpha", adapter.config().alpha);
  for (const LoraModule* m : modules) {
    const std::string name = lora_targets(m->module)[0].gguf;
    w.declare_tensor(name + ".lora_a", GGML_TYPE_F32, {m->a->shape[1], m->rank});
    w.declare_tensor(name + ".lora_b", GGML_TYPE_F32, {m->rank, m->b->shape[0]});
  }
  std::vector<uint8_t> bytes;
  w.write(path, [&](size_t i, const ggml_tensor&) {
    const LoraModule& m = *modules[i / 2];
    std::vector<float> values = i % 2 == 0 ? m.a->to_f32() : m.b->to_f32();
    if (i % 2 == 1) {
      // The engine scales every pair by alpha / rank with the file's single alpha; rsLoRA and
      // rank/alpha patterns are honoured by folding the remaining factor into B.
      const float engine_scale = adapter.config().alpha / static_cast<float>(m.rank);
      const float fold = m.scale / engine_scale;
      for (float& v : values) v *= fold;
    }
    return convert_f32(values, GGML_TYPE_F32, static_cast<int64_t>(values.size()), bytes);
  });
}

}  // namespace

LoraMode lora_mode_from_name(const std::string& name) {
  if (name == "auto") return LoraMode::kAuto;
  if (name == "merged") return LoraMode::kMerged;
  if (name == "runtime") return LoraMode::kRuntime;
  throw UsageError("--lora_mode " + name + ": expected auto, merged or runtime");
}

const char* lora_mode_name(LoraMode mode) {
  switch (mode) {
    case LoraMode::kAuto: return "auto";
    case LoraMode::kMerged: return "merged";
    case LoraMode::kRuntime: return "runtime";
  }
  return "auto";
}

LoraMode resolve_lora_mode(LoraMode mode, const std::filesystem::path& base_text) {
  if (mode != LoraMode::kAuto) return mode;
  return has_float_weights(base_text) ? LoraMode::kMerged : LoraMode::kRuntime;
}

LoraFiles convert_lora(const PeftAdapter& adapter, const ModelFiles& base, const std::filesystem::path& out_dir, LoraMode mode) {
  mode = resolve_lora_mode(mode, base.text);
  const std::string where = adapter.dir().string();
  const TensorShapes text_shapes = gguf_tensor_shapes(base.text);
  const TensorShapes vision_shapes = gguf_tensor_shapes(base.vision);
  std::vector<const LoraModule*> text, vision;
  for (const LoraModule& m : adapter.modules()) {
    const std::vector<LoraTarget> targets = lora_targets(m.module);
    if (targets.empty()) throw InputError(where + ": LoRA on " + m.module + " cannot be mapped onto the Qwen2.5-VL engine");
    for (const TensorView* v : {m.a, m.b}) require_finite(*v, where + ": tensor " + v->name);  // before anything is written
    for (const LoraTarget& t : targets) check_lora_fits(m, t, m.vision() ? vision_shapes : text_shapes, where);
    (m.vision() ? vision : text).push_back(&m);
  }
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) throw OutputError(out_dir.string() + ": cannot create folder (" + ec.message() + ")");
  LoraFiles files;
  files.text_pairs = text.size();
  files.vision_pairs = vision.size();
  files.vision = base.vision;
  if (!text.empty() && mode == LoraMode::kMerged) {
    files.text = out_dir / "model.gguf";
    write_merged_gguf(text, base.text, *files.text, where);
  } else if (!text.empty()) {
    files.text_adapter = out_dir / "adapter.gguf";
    write_text_adapter(adapter, text, *files.text_adapter);
  }
  if (!vision.empty()) {
    files.vision = out_dir / "mmproj.gguf";
    write_merged_gguf(vision, base.vision, files.vision, where);
  }
  return files;
}

// with_lora without the exit-code mapping.
static ModelFiles with_lora_files(const ModelFiles& base, const std::filesystem::path& lora_dir,
                                  const ModelSourceOptions& options, LoraMode requested) {
  const std::filesystem::path adapter_dir = select_adapter_dir(lora_dir);
  const LoraMode mode = resolve_lora_mode(requested, base.text);
  const bool merged = mode == LoraMode::kMerged;
  // Runtime entries keep the key they always had; merged ones have their own.
  const std::string key = "lora-" + content_label(adapter_dir) + (merged ? "-merged-" : "-") +
                          content_key({adapter_dir, base.text, base.vision}, merged ? "lora merged-1" : "lora");
  const std::filesystem::path dir = build_cached(cache_root(options), key, "adapter " + adapter_dir.string(),
                                                 [&](const std::filesystem::path& partial) {
    const LoraFiles f = convert_lora(PeftAdapter(adapter_dir), base, partial, mode);
    spdlog::info("adapter {}: {} language-model pairs ({}), {} vision pairs (merged)", adapter_dir.string(), f.text_pairs,
                 merged ? "merged into a copy of the text model" : "applied at run time", f.vision_pairs);
  });
  if (requested == LoraMode::kAuto) {
    spdlog::info("adapter {}: language-model pairs {} (--lora_mode auto: the base's text weights are {})", adapter_dir.string(),
                 merged ? "merged" : "applied at run time", merged ? "f32/f16/bf16" : "quantized");
  }
  ModelFiles files = base;
  std::error_code ec;
  if (std::filesystem::exists(dir / "adapter.gguf", ec)) files.lora = dir / "adapter.gguf";
  if (std::filesystem::exists(dir / "model.gguf", ec)) files.text = dir / "model.gguf";
  if (std::filesystem::exists(dir / "mmproj.gguf", ec)) files.vision = dir / "mmproj.gguf";
  return files;
}

ModelFiles with_lora(const ModelFiles& base, const std::filesystem::path& lora_dir, const ModelSourceOptions& options,
                     LoraMode mode) {
  return as_model_error([&] { return with_lora_files(base, lora_dir, options, mode); });
}

}  // namespace drivevqa
