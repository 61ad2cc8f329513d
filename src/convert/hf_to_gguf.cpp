#include "convert/hf_to_gguf.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <span>

#include "convert/finite_check.h"
#include "convert/hf_config.h"
#include "convert/safetensors.h"
#include "qwen25vl/qwen_gguf_keys.h"
#include "qwen25vl/tensor_table.h"
#include "util/error.h"
#include "util/interrupt.h"
#include "util/stopwatch.h"

namespace drivevqa {
namespace {

int64_t element_count(const std::vector<int64_t>& ne) {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

std::string dims_text(const std::vector<int64_t>& dims) {
  std::string text;
  for (int64_t d : dims) {
    if (!text.empty()) text += 'x';
    text += std::to_string(d);
  }
  return text;
}

// Buffers reused from tensor to tensor: allocated and faulted in once for the largest tensor.
struct ConvertBuffers {
  std::vector<float> all, tap;
  std::vector<uint8_t> bytes;
};

// The f32 values of one GGUF tensor, cut from its checkpoint tensor after checking the shape. They
// live in `buffers` until the next call.
std::span<const float> source_values(const QwenTensor& t, const TensorView& view, const std::string& where,
                                     ConvertBuffers& buffers) {
  const std::vector<int64_t> expected = hf_shape(t);
  if (view.shape != expected) {
    throw InputError(where + ": " + view.name + " has shape " + dims_text(view.shape) + ", the config implies " + dims_text(expected));
  }
  view.to_f32(buffers.all);
  const std::span<const float> all = buffers.all;
  const size_t count = static_cast<size_t>(element_count(t.ne));
  switch (t.rule->slice) {
    case HfSlice::kWhole: return all;
    case HfSlice::kFusedRows:  // this part's rows of the fused q|k|v
      return all.subspan(static_cast<size_t>(t.rule->part) * count, count);
    case HfSlice::kTemporalTap: {  // torch [out, c, t, kh, kw] -> one temporal slice [out, c, kh, kw]
      const size_t per = static_cast<size_t>(expected[3] * expected[4]);
      const size_t channels = static_cast<size_t>(expected[0] * expected[1]);
      buffers.tap.resize(channels * per);
      for (size_t oc = 0; oc < channels; ++oc) {
        std::memcpy(&buffers.tap[oc * per], &all[(oc * 2 + static_cast<size_t>(t.rule->part)) * per], per * sizeof(float));
      }
      return buffers.tap;
    }
  }
  return all;
}

void write_gguf(const std::filesystem::path& path, GgufStreamWriter& writer, const std::vector<QwenTensor>& sources,
                const std::map<std::string, const TensorView*>& tensors, ggml_type outtype, const std::string& src,
                ConvertReport& report, size_t total_bytes) {
  std::vector<ggml_type> types;
  for (const QwenTensor& s : sources) {
    if (!tensors.count(s.hf)) throw InputError(src + ": checkpoint has no tensor " + s.hf + " (needed for " + s.gguf + ")");
    types.push_back(stored_type(s, outtype));
    writer.declare_tensor(s.gguf, types.back(), s.ne);
  }
  auto last_log = std::chrono::steady_clock::now();
  ConvertBuffers buffers;
  writer.write(path, [&](size_t i, const ggml_tensor&) {
    throw_if_interrupted();  // SIGINT / SIGTERM stop between tensors; the caller's build folder goes
    const TensorView& view = *tensors.at(sources[i].hf);
    const std::span<const float> values = source_values(sources[i], view, src, buffers);
    // The values are in hand anyway: a NaN/Inf or an fp16 overflow is refused before anything is kept.
    check_weight_values(values.data(), values.size(), types[i], src + ": tensor " + view.name);
    const std::span<const uint8_t> data = convert_f32(values, types[i], sources[i].ne[0], buffers.bytes);
    report.bytes_read += view.bytes * static_cast<size_t>(element_count(sources[i].ne)) / static_cast<size_t>(view.element_count());
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
    tensors[hub_name(name)] = view;
  }
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) throw OutputError(out_dir.string() + ": cannot create folder (" + ec.message() + ")");
  ConvertReport report;
  const DimSizes sizes = dim_sizes(config.text, config.vision);
  {
    GgufStreamWriter w;
    write_text_model_keys(w, {config.name, outtype, config.text, &tokenizer.vocab, tokenizer.bos, tokenizer.eos,
                              tokenizer.pad, tokenizer.chat_template});
    write_gguf(out_dir / "model.gguf", w, written_tensors(Tower::kText, sizes, config.text.layers, config.tied_embeddings), tensors, outtype, src.string(), report, checkpoint.total_bytes());
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
    write_gguf(out_dir / "mmproj.gguf", w, written_tensors(Tower::kVision, sizes, config.vision.blocks), tensors, outtype, src.string(), report, checkpoint.total_bytes());
  }
  report.seconds = seconds_since(start);
  return report;
}

}  // namespace drivevqa
