#include "convert/hf_to_gguf.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>
#include <functional>

#include "convert/finite_check.h"
#include "convert/hf_config.h"
#include "convert/safetensors.h"
#include "qwen25vl/qwen_gguf_keys.h"
#include "util/error.h"
#include "util/interrupt.h"
#include "util/stopwatch.h"

namespace drivevqa {
namespace {

// How one GGUF tensor is made from the checkpoint.
struct Source {
  std::string gguf;                // GGUF name
  std::vector<int64_t> ne;         // GGUF shape (ggml order)
  std::string hf;                  // checkpoint name (normalised to the hub layout)
  size_t rows_from = 0, rows = 0;  // row slice of a fused tensor (rows == 0: all)
  int temporal_tap = -1;           // Conv3D patch embedding: which temporal slice
};

// transformers >= 4.52 and Omni checkpoints name tensors differently; map them to the hub layout.
std::string normalise(const std::string& name) {
  std::string n = name;
  if (n.rfind("thinker.", 0) == 0) n = n.substr(8);
  if (n.rfind("model.language_model.", 0) == 0) return "model." + n.substr(21);
  if (n.rfind("model.visual.", 0) == 0) return n.substr(6);
  return n;
}

std::vector<Source> text_sources(const HfModelConfig& c) {
  const int64_t h = c.text.hidden, kv = c.text.kv_width(), ff = c.text.ffn, vocab = c.text.vocab;
  std::vector<Source> s;
  s.push_back({"token_embd.weight", {h, vocab}, "model.embed_tokens.weight"});
  for (int i = 0; i < c.text.layers; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".", l = "model.layers." + std::to_string(i) + ".";
    s.push_back({b + "attn_norm.weight", {h}, l + "input_layernorm.weight"});
    s.push_back({b + "attn_q.weight", {h, h}, l + "self_attn.q_proj.weight"});
    s.push_back({b + "attn_q.bias", {h}, l + "self_attn.q_proj.bias"});
    s.push_back({b + "attn_k.weight", {h, kv}, l + "self_attn.k_proj.weight"});
    s.push_back({b + "attn_k.bias", {kv}, l + "self_attn.k_proj.bias"});
    s.push_back({b + "attn_v.weight", {h, kv}, l + "self_attn.v_proj.weight"});
    s.push_back({b + "attn_v.bias", {kv}, l + "self_attn.v_proj.bias"});
    s.push_back({b + "attn_output.weight", {h, h}, l + "self_attn.o_proj.weight"});
    s.push_back({b + "ffn_norm.weight", {h}, l + "post_attention_layernorm.weight"});
    s.push_back({b + "ffn_gate.weight", {h, ff}, l + "mlp.gate_proj.weight"});
    s.push_back({b + "ffn_up.weight", {h, ff}, l + "mlp.up_proj.weight"});
    s.push_back({b + "ffn_down.weight", {ff, h}, l + "mlp.down_proj.weight"});
  }
  s.push_back({"output_norm.weight", {h}, "model.norm.weight"});
  if (!c.tied_embeddings) s.push_back({"output.weight", {h, vocab}, "lm_head.weight"});
  return s;
}

std::vector<Source> vision_sources(const HfModelConfig& c) {
  const int64_t h = c.vision.hidden, ff = c.vision.ffn, p = c.vision.patch, merged = 4 * h, out = c.text.hidden;
  const std::string patch = "visual.patch_embed.proj.weight";
  std::vector<Source> s;
  s.push_back({"v.patch_embd.weight", {p, p, 3, h}, patch, 0, 0, 0});
  s.push_back({"v.patch_embd.weight.1", {p, p, 3, h}, patch, 0, 0, 1});
  for (int i = 0; i < c.vision.blocks; ++i) {
    const std::string b = "v.blk." + std::to_string(i) + ".", l = "visual.blocks." + std::to_string(i) + ".";
    s.push_back({b + "ln1.weight", {h}, l + "norm1.weight"});
    const char* qkv[] = {"attn_q", "attn_k", "attn_v"};
    for (size_t k = 0; k < 3; ++k) {
      s.push_back({b + qkv[k] + ".weight", {h, h}, l + "attn.qkv.weight", k * static_cast<size_t>(h), static_cast<size_t>(h)});
      s.push_back({b + qkv[k] + ".bias", {h}, l + "attn.qkv.bias", k * static_cast<size_t>(h), static_cast<size_t>(h)});
    }
    s.push_back({b + "attn_out.weight", {h, h}, l + "attn.proj.weight"});
    s.push_back({b + "attn_out.bias", {h}, l + "attn.proj.bias"});
    s.push_back({b + "ln2.weight", {h}, l + "norm2.weight"});
    s.push_back({b + "ffn_gate.weight", {h, ff}, l + "mlp.gate_proj.weight"});
    s.push_back({b + "ffn_gate.bias", {ff}, l + "mlp.gate_proj.bias"});
    s.push_back({b + "ffn_up.weight", {h, ff}, l + "mlp.up_proj.weight"});
    s.push_back({b + "ffn_up.bias", {ff}, l + "mlp.up_proj.bias"});
    s.push_back({b + "ffn_down.weight", {ff, h}, l + "mlp.down_proj.weight"});
    s.push_back({b + "ffn_down.bias", {h}, l + "mlp.down_proj.bias"});
  }
  s.push_back({"v.post_ln.weight", {h}, "visual.merger.ln_q.weight"});
  s.push_back({"mm.0.weight", {merged, merged}, "visual.merger.mlp.0.weight"});
  s.push_back({"mm.0.bias", {merged}, "visual.merger.mlp.0.bias"});
  s.push_back({"mm.2.weight", {merged, out}, "visual.merger.mlp.2.weight"});
  s.push_back({"mm.2.bias", {out}, "visual.merger.mlp.2.bias"});
  return s;
}

int64_t element_count(const std::vector<int64_t>& ne) {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

// The f32 values of one GGUF tensor, cut from its checkpoint tensor after checking the shape.
std::vector<float> source_values(const Source& s, const TensorView& view, const std::string& where) {
  const int64_t want = element_count(s.ne);
  if (s.temporal_tap >= 0) {
    // torch [out, c, t, kh, kw] -> one temporal slice [out, c, kh, kw].
    if (view.shape.size() != 5 || view.shape[2] != 2 || view.shape[0] * view.shape[1] * view.shape[3] * view.shape[4] != want) {
      throw InputError(where + ": " + view.name + " is not a [out, 3, 2, 14, 14] patch embedding of this config");
    }
    const std::vector<float> all = view.to_f32();
    const size_t per = static_cast<size_t>(view.shape[3] * view.shape[4]);
    const size_t channels = static_cast<size_t>(view.shape[0] * view.shape[1]);
    std::vector<float> out(channels * per);
    for (size_t oc = 0; oc < channels; ++oc) {
      std::memcpy(&out[oc * per], &all[(oc * 2 + static_cast<size_t>(s.temporal_tap)) * per], per * sizeof(float));
    }
    return out;
  }
  if (s.rows > 0) {
    const int64_t row = s.ne.size() > 1 ? s.ne[0] : 1;
    if (view.element_count() != 3 * want || view.shape[0] != static_cast<int64_t>(3 * s.rows)) {
      throw InputError(where + ": fused " + view.name + " does not hold three " + std::to_string(s.rows) + "-row parts");
    }
    const std::vector<float> all = view.to_f32();
    const auto first = all.begin() + static_cast<std::ptrdiff_t>(s.rows_from * static_cast<size_t>(row));
    return std::vector<float>(first, first + want);
  }
  std::vector<int64_t> reversed(s.ne.rbegin(), s.ne.rend());
  if (view.shape != reversed) {
    std::string got, expected;
    for (int64_t d : view.shape) got += (got.empty() ? "" : "x") + std::to_string(d);
    for (int64_t d : reversed) expected += (expected.empty() ? "" : "x") + std::to_string(d);
    throw InputError(where + ": " + view.name + " has shape " + got + ", the config implies " + expected);
  }
  return view.to_f32();
}

void write_gguf(const std::filesystem::path& path, GgufStreamWriter& writer, const std::vector<Source>& sources,
                const std::map<std::string, const TensorView*>& tensors, ggml_type outtype, const std::string& src,
                ConvertReport& report, size_t total_bytes) {
  std::vector<ggml_type> types;
  for (const Source& s : sources) {
    if (!tensors.count(s.hf)) throw InputError(src + ": checkpoint has no tensor " + s.hf + " (needed for " + s.gguf + ")");
    types.push_back(gguf_tensor_type(s.gguf, s.ne, outtype));
    writer.declare_tensor(s.gguf, types.back(), s.ne);
  }
  auto last_log = std::chrono::steady_clock::now();
  writer.write(path, [&](size_t i, const ggml_tensor&) {
    throw_if_interrupted();  // SIGINT / SIGTERM stop between tensors; the caller's build folder goes
    const TensorView& view = *tensors.at(sources[i].hf);
    const std::vector<float> values = source_values(sources[i], view, src);
    // The values are in hand anyway: a NaN/Inf or an fp16 overflow is refused before anything is kept.
    check_weight_values(values.data(), values.size(), types[i], src + ": tensor " + view.name);
    std::vector<uint8_t> data = convert_f32(values, types[i], sources[i].ne[0]);
    report.bytes_read += sources[i].rows > 0 ? view.bytes / 3 : sources[i].temporal_tap >= 0 ? view.bytes / 2 : view.bytes;
    ++report.tensors;
    if (std::chrono::steady_clock::now() - last_log > std::chrono::seconds(5)) {
      last_log = std::chrono::steady_clock::now();
      spdlog::info("converting: {} of {} MB", report.bytes_read >> 20, total_bytes >> 20);
    }
    return data;
  });
}

}  // namespace

ConvertReport convert_hf_model(const std::filesystem::path& src, const std::filesystem::path& out_dir, ggml_type outtype) {
  const auto start = std::chrono::steady_clock::now();
  const HfModelConfig config = read_hf_config(src);
  const HfTokenizer tokenizer = read_hf_tokenizer(src, config.text.vocab);
  const Checkpoint checkpoint(src);
  std::map<std::string, const TensorView*> tensors;
  for (const auto& [name, view] : checkpoint.all()) {
    if (name.find("rotary_emb.inv_freq") != std::string::npos) continue;
    tensors[normalise(name)] = view;
  }
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) throw OutputError(out_dir.string() + ": cannot create folder (" + ec.message() + ")");
  ConvertReport report;
  {
    GgufStreamWriter w;
    write_text_model_keys(w, {config.name, outtype, config.text, &tokenizer.vocab, tokenizer.bos, tokenizer.eos,
                              tokenizer.pad, tokenizer.chat_template});
    write_gguf(out_dir / "model.gguf", w, text_sources(config), tensors, outtype, src.string(), report, checkpoint.total_bytes());
  }
  {
    GgufStreamWriter w;
    VisionModelKeys keys;
    keys.name = config.name;
    keys.weight_type = outtype;
    keys.shape = config.vision;
    keys.projection_dim = config.text.hidden;
    keys.image_mean = config.vision_extras.image_mean;
    keys.image_std = config.vision_extras.image_std;
    write_vision_model_keys(w, keys);
    write_gguf(out_dir / "mmproj.gguf", w, vision_sources(config), tensors, outtype, src.string(), report, checkpoint.total_bytes());
  }
  report.seconds = seconds_since(start);
  return report;
}

}  // namespace drivevqa
