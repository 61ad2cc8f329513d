// The file-level checks of engine/gguf_check.h and the LoRA adapter's (llama-adapter.cpp's
// llama_adapter_lora_init_impl and the LoRA paths of llama-graph.cpp). Text and vision checks are
// in gguf_check_text.cpp and gguf_check_vision.cpp.
#include "engine/gguf_check.h"

#include <cmath>
#include <fstream>
#include <memory>

#include "engine/finite_values.h"
#include "engine/gguf_check_reader.h"
#include "qwen25vl/tensor_table.h"
#include "util/error.h"

namespace drivevqa {
namespace {

using gguf_check::GgufReader;
using gguf_check::printable;
using gguf_check::Shape;
using gguf_check::shape_text;
using gguf_check::TensorInfo;
using gguf_check::TensorUse;

using GgufPtr = std::unique_ptr<gguf_context, decltype(&gguf_free)>;

// Metadata and tensor infos only (no_alloc, no ggml context): no tensor data is read.
GgufPtr open_gguf(const std::filesystem::path& path, const char* role) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw ModelError(path.string() + ": " + role + " file not found");
  char magic[4] = {};
  std::ifstream(path, std::ios::binary).read(magic, 4);
  if (std::string(magic, 4) != "GGUF") throw ModelError(path.string() + ": not a GGUF file");
  gguf_init_params params{/*no_alloc=*/true, /*ctx=*/nullptr};
  GgufPtr gguf(gguf_init_from_file(path.c_str(), params), &gguf_free);
  if (!gguf) throw ModelError(path.string() + ": GGUF file is truncated or corrupt");
  return gguf;
}

uint64_t size_of(const std::filesystem::path& path) {
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) throw ModelError(path.string() + ": cannot read the file size (" + ec.message() + ")");
  return size;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

struct LoraPair {
  const TensorInfo* a = nullptr;
  const TensorInfo* b = nullptr;
};

void expect_lora_shape(const GgufReader& r, const TensorInfo& t, const Shape& ne, const std::string& why) {
  if (t.ne != ne) r.fail("tensor " + t.name + " has shape " + shape_text(t.ne) + ", expected " + shape_text(ne) + " (" + why + ")");
}

// llama.cpp checks the base-facing sides of a pair; the rank of an embedding's pair it does not, and
// the graph's ggml_mul_mat asserts on it.
void check_pair(const GgufReader& r, const std::string& target, const LoraPair& pair, const TextModelFacts& base) {
  if (!pair.a || !pair.b) r.fail("LoRA pair for " + target + " lacks its " + (pair.a ? ".lora_b" : ".lora_a") + " tensor");
  const auto it = base.tensor_shapes.find(target);
  if (it == base.tensor_shapes.end()) r.fail("tensor " + pair.a->name + " targets " + target + ", which the text model does not have");
  const Shape& w = it->second;
  r.expect_usable_type(*pair.a, TensorUse::kMatrix);
  r.expect_usable_type(*pair.b, TensorUse::kMatrix);
  const std::string base_why = target + " is " + shape_text(w) + " in the text model";
  if (tensor_role(target) == TensorRole::kEmbedding) {  // looked up by token: A is [rank, tokens], B [rank, width]
    const int64_t rank = pair.a->ne[0];
    expect_lora_shape(r, *pair.a, {rank, w[1], 1, 1}, "rank x tokens; " + base_why);
    expect_lora_shape(r, *pair.b, {rank, w[0], 1, 1}, "the rank of " + pair.a->name + " x width; " + base_why);
  } else {
    const int64_t rank = pair.a->ne[1];
    expect_lora_shape(r, *pair.a, {w[0], rank, 1, 1}, "input width x rank; " + base_why);
    expect_lora_shape(r, *pair.b, {rank, w[1], 1, 1}, "the rank of " + pair.a->name + " x output width; " + base_why);
  }
}

void check_adapter_keys(const GgufReader& r) {
  const std::string arch = r.string("general.architecture").value_or("");
  if (arch != "qwen2vl") r.fail("LoRA adapter has architecture '" + printable(arch) + "', expected 'qwen2vl'");
  const std::string type = r.string("general.type").value_or("");
  if (type != "adapter") r.fail("general.type is '" + printable(type) + "', expected 'adapter'");
  const std::string adapter = r.string("adapter.type").value_or("");
  if (adapter != "lora") r.fail("adapter.type is '" + printable(adapter) + "', expected 'lora'");
  const auto alpha = r.f32("adapter.lora.alpha");
  if (alpha && !std::isfinite(*alpha)) r.fail("adapter.lora.alpha is " + std::to_string(*alpha) + ", expected a finite number");
  r.array_size("adapter.alora.invocation_tokens", GGUF_TYPE_UINT32);
}

}  // namespace

void check_lora_adapter(const gguf_context* gguf, const std::string& file, const TextModelFacts& base) {
  const GgufReader r(gguf, file);
  check_adapter_keys(r);
  r.expect_sane_tensors();
  std::map<std::string, LoraPair> pairs;
  for (const TensorInfo& t : r.tensors()) {
    if (ends_with(t.name, ".lora_a")) {
      pairs[t.name.substr(0, t.name.size() - 7)].a = &t;
    } else if (ends_with(t.name, ".lora_b")) {
      pairs[t.name.substr(0, t.name.size() - 7)].b = &t;
    } else if (!ends_with(t.name, "_norm.weight")) {  // norm tensors are skipped by llama.cpp
      r.fail("tensor " + t.name + " is neither a .lora_a nor a .lora_b");
    }
  }
  for (const auto& [target, pair] : pairs) check_pair(r, target, pair, base);
}

void check_tensor_data_in_file(const gguf_context* gguf, const std::string& file, uint64_t file_size) {
  const GgufReader r(gguf, file);
  const uint64_t start = gguf_get_data_offset(gguf);
  for (const TensorInfo& t : r.tensors()) {
    const uint64_t end = start + t.offset + t.bytes;
    if (end < start || end > file_size) {
      r.fail("GGUF file is truncated: tensor " + t.name + " ends at byte " + std::to_string(end) + " of a " +
             std::to_string(file_size) + "-byte file");
    }
  }
  check_gguf_sampled_values(gguf, file);  // engine/finite_values.h: NaN/Inf in a sample of each float tensor
}

TextModelFacts check_text_model_file(const std::filesystem::path& path) {
  const GgufPtr gguf = open_gguf(path, "text model");
  TextModelFacts facts = check_text_model(gguf.get(), path.string());
  check_tensor_data_in_file(gguf.get(), path.string(), size_of(path));
  return facts;
}

void check_lora_file(const std::filesystem::path& path, const TextModelFacts& base) {
  const GgufPtr gguf = open_gguf(path, "LoRA adapter");
  check_lora_adapter(gguf.get(), path.string(), base);
  check_tensor_data_in_file(gguf.get(), path.string(), size_of(path));
}

void check_vision_model_file(const std::filesystem::path& path, std::optional<int64_t> text_width) {
  const GgufPtr gguf = open_gguf(path, "vision model (mmproj)");
  check_vision_model(gguf.get(), path.string(), text_width);
  check_tensor_data_in_file(gguf.get(), path.string(), size_of(path));
}

}  // namespace drivevqa
