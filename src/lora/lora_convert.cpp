#include "lora/lora_convert.h"

#include <gguf.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <map>

#include "convert/content_key.h"
#include "convert/finite_check.h"
#include "qwen25vl/gguf_stream_writer.h"
#include "qwen25vl/tensor_table.h"
#include "util/error.h"

namespace drivevqa {
namespace {

using GgufPtr = std::unique_ptr<gguf_context, decltype(&gguf_free)>;
using GgmlPtr = std::unique_ptr<ggml_context, decltype(&ggml_free)>;

// The base tensor's (ne0, ne1), to check an adapter against the model it is meant for.
std::map<std::string, std::pair<int64_t, int64_t>> tensor_shapes(const std::filesystem::path& path) {
  ggml_context* meta = nullptr;
  gguf_init_params params{true, &meta};
  GgufPtr g(gguf_init_from_file(path.c_str(), params), &gguf_free);
  if (!g) throw ModelError(path.string() + ": GGUF file is truncated or corrupt");
  GgmlPtr owner(meta, &ggml_free);
  std::map<std::string, std::pair<int64_t, int64_t>> shapes;
  for (ggml_tensor* t = ggml_get_first_tensor(meta); t; t = ggml_get_next_tensor(meta, t)) shapes[t->name] = {t->ne[0], t->ne[1]};
  return shapes;
}

void check_fits(const LoraModule& m, const LoraTarget& t, const std::map<std::string, std::pair<int64_t, int64_t>>& shapes,
                const std::string& adapter) {
  const auto it = shapes.find(t.gguf);
  if (it == shapes.end()) throw InputError(adapter + ": " + m.module + " targets " + t.gguf + ", which the base model lacks");
  const int64_t in = m.a->shape[1], out = m.b->shape[0] / t.parts;
  if (it->second.first != in || it->second.second != out) {
    throw InputError(adapter + ": " + m.module + " is " + std::to_string(in) + " -> " + std::to_string(out) +
                     " but the base model's " + t.gguf + " is " + std::to_string(it->second.first) + " -> " +
                     std::to_string(it->second.second) + " (an adapter for another model?)");
  }
}

// scale * B[rows] * A as a row-major [out, in] f32 matrix (dot products accumulated in double).
std::vector<float> lora_delta(const LoraModule& m, const LoraTarget& t) {
  const std::vector<float> a = m.a->to_f32(), b = m.b->to_f32();
  const int64_t r = m.rank, in = m.a->shape[1];
  const int64_t out = m.b->shape[0] / t.parts;
  const int64_t first = t.part * out;
  std::vector<float> delta(static_cast<size_t>(out * in));
  for (int64_t o = 0; o < out; ++o) {
    const float* brow = &b[static_cast<size_t>((first + o) * r)];
    for (int64_t i = 0; i < in; ++i) {
      double acc = 0;
      for (int64_t k = 0; k < r; ++k) acc += static_cast<double>(brow[k]) * a[static_cast<size_t>(k * in + i)];
      delta[static_cast<size_t>(o * in + i)] = static_cast<float>(m.scale * acc);
    }
  }
  return delta;
}

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
    return convert_f32(values, GGML_TYPE_F32, static_cast<int64_t>(values.size()));
  });
}

void write_merged_vision(const std::vector<const LoraModule*>& modules, const std::filesystem::path& base,
                         const std::filesystem::path& path) {
  ggml_context* data_ctx = nullptr;
  gguf_init_params params{false, &data_ctx};
  GgufPtr g(gguf_init_from_file(base.c_str(), params), &gguf_free);
  if (!g) throw ModelError(base.string() + ": GGUF file is truncated or corrupt");
  GgmlPtr owner(data_ctx, &ggml_free);
  std::map<std::string, std::vector<float>> deltas;
  for (const LoraModule* m : modules) {
    for (const LoraTarget& t : lora_targets(m->module)) {
      std::vector<float> d = lora_delta(*m, t);
      auto [it, fresh] = deltas.emplace(t.gguf, std::move(d));
      if (!fresh) throw InputError("two LoRA pairs change " + t.gguf);
    }
  }
  GgufStreamWriter w;
  gguf_set_kv(w.kv(), g.get());
  std::vector<ggml_tensor*> tensors;
  for (int64_t i = 0; i < gguf_get_n_tensors(g.get()); ++i) {
    ggml_tensor* t = ggml_get_tensor(data_ctx, gguf_get_tensor_name(g.get(), i));
    tensors.push_back(t);
    w.declare_tensor(t->name, t->type, std::vector<int64_t>(t->ne, t->ne + ggml_n_dims(t)));
  }
  w.write(path, [&](size_t i, const ggml_tensor&) {
    const ggml_tensor* t = tensors[i];
    const auto it = deltas.find(t->name);
    const auto* bytes = static_cast<const uint8_t*>(t->data);
    if (it == deltas.end()) return std::vector<uint8_t>(bytes, bytes + ggml_nbytes(t));
    std::vector<float> w32(static_cast<size_t>(ggml_nelements(t)));
    if (t->type == GGML_TYPE_F32) {
      std::memcpy(w32.data(), t->data, w32.size() * sizeof(float));
    } else {
      ggml_get_type_traits(t->type)->to_float(t->data, w32.data(), ggml_nelements(t));
    }
    for (size_t k = 0; k < w32.size(); ++k) w32[k] += it->second[k];
    return convert_f32(w32, t->type, t->ne[0]);
  });
}

}  // namespace

LoraFiles convert_lora(const PeftAdapter& adapter, const ModelFiles& base, const std::filesystem::path& out_dir) {
  const std::string where = adapter.dir().string();
  const auto text_shapes = tensor_shapes(base.text);
  const auto vision_shapes = tensor_shapes(base.vision);
  std::vector<const LoraModule*> text, vision;
  for (const LoraModule& m : adapter.modules()) {
    const std::vector<LoraTarget> targets = lora_targets(m.module);
    if (targets.empty()) throw InputError(where + ": LoRA on " + m.module + " cannot be mapped onto the Qwen2.5-VL engine");
    for (const TensorView* v : {m.a, m.b}) require_finite(*v, where + ": tensor " + v->name);  // before anything is written
    for (const LoraTarget& t : targets) check_fits(m, t, m.vision() ? vision_shapes : text_shapes, where);
    (m.vision() ? vision : text).push_back(&m);
  }
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) throw OutputError(out_dir.string() + ": cannot create folder (" + ec.message() + ")");
  LoraFiles files;
  files.text_pairs = text.size();
  files.vision_pairs = vision.size();
  files.vision = base.vision;
  if (!text.empty()) {
    files.text_adapter = out_dir / "adapter.gguf";
    write_text_adapter(adapter, text, *files.text_adapter);
  }
  if (!vision.empty()) {
    files.vision = out_dir / "mmproj.gguf";
    write_merged_vision(vision, base.vision, files.vision);
  }
  return files;
}

// with_lora without the exit-code mapping.
static ModelFiles with_lora_files(const ModelFiles& base, const std::filesystem::path& lora_dir,
                                  const ModelSourceOptions& options) {
  const std::filesystem::path adapter_dir = select_adapter_dir(lora_dir);
  const std::string key = "lora-" + content_label(adapter_dir) + "-" +
                          content_key({adapter_dir, base.text, base.vision}, "lora");
  const std::filesystem::path dir = build_cached(cache_root(options), key, "adapter " + adapter_dir.string(),
                                                 [&](const std::filesystem::path& partial) {
    const LoraFiles f = convert_lora(PeftAdapter(adapter_dir), base, partial);
    spdlog::info("adapter {}: {} language-model pairs (applied at run time), {} vision pairs (merged)",
                 adapter_dir.string(), f.text_pairs, f.vision_pairs);
  });
  ModelFiles files = base;
  std::error_code ec;
  if (std::filesystem::exists(dir / "adapter.gguf", ec)) files.lora = dir / "adapter.gguf";
  if (std::filesystem::exists(dir / "mmproj.gguf", ec)) files.vision = dir / "mmproj.gguf";
  return files;
}

ModelFiles with_lora(const ModelFiles& base, const std::filesystem::path& lora_dir, const ModelSourceOptions& options) {
  return as_model_error([&] { return with_lora_files(base, lora_dir, options); });
}

}  // namespace drivevqa
