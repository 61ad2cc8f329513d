#include "engine/memory_plan.h"

// llama.cpp's staging header (pinned engine version): the per-buffer memory breakdown its --fit
// reads. Only this file depends on it.
#include <llama-ext.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "engine/handles.h"
#include "engine/model.h"
#include "engine/session.h"
#include "util/error.h"
#include "util/stopwatch.h"

namespace drivevqa {
namespace {

// What the engine does not count, measured on the tiny and small models with `ulimit -v`
// (tests/memory_limit_test.cpp): each engine thread's stack and malloc arena, decoded images and
// prompts, and the frame embeddings kept for reuse (pipeline/model_worker.cpp keeps 12 images').
constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint64_t kFixedMargin = 96 * kMiB;
constexpr uint64_t kPerThreadAddressSpace = 72 * kMiB;  // 8 MiB stack + a 64 MiB malloc arena
constexpr uint64_t kPerThreadRam = 8 * kMiB;
constexpr uint64_t kKeptImageEmbeddings = 12;
// An image's graph can differ from the warm-up's; the text graphs are reserved at their largest.
constexpr double kVisionComputeSlack = 1.1;

bool is_host(ggml_backend_dev_t dev) {
  return dev == nullptr || ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_CPU;
}

uint64_t file_size_or_zero(const std::filesystem::path& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  return ec ? 0 : size;
}

struct Tally {
  MemoryNeed need;
  std::map<std::string, uint64_t> devices;

  void add(const char* part, uint64_t bytes, ggml_backend_dev_t dev, bool mapped = false) {
    if (bytes == 0) return;
    if (!is_host(dev)) {
      devices[ggml_backend_dev_name(dev)] += bytes;
    } else if (mapped) {
      need.mapped += bytes;
    } else {
      need.host += bytes;
    }
    auto it = std::find_if(need.parts.begin(), need.parts.end(), [&](const auto& p) { return p.first == part; });
    if (it == need.parts.end()) {
      need.parts.emplace_back(part, bytes);
    } else {
      it->second += bytes;
    }
  }
};

// The text model and a context of the planned size, laid out without allocation.
bool measure_text(const ModelFiles& files, const EngineOptions& options, Tally& tally) {
  llama_model_params mparams = text_model_params(options);
  mparams.no_alloc = true;
  mparams.load_mode = LLAMA_LOAD_MODE_NONE;  // the dry run maps nothing (the engine asserts it)
  LlamaModelPtr model(llama_model_load_from_file(files.text.c_str(), mparams));
  if (!model) return false;
  SessionOptions planned;
  planned.n_ctx = options.planned_context;
  planned.n_seq_max = options.planned_sequences;
  planned.kv_type = options.planned_kv_type;
  planned.flash_attention = text_flash_attention(options);
  LlamaContextPtr ctx(llama_init_from_model(model.get(), context_params_for(options, planned)));
  if (!ctx) return false;
  // Weights in a plain host buffer are the mmap of the file (load mode auto); repacked copies
  // (CPU_REPACK and the like) are written memory.
  const bool mmap = llama_supports_mmap();
  for (const auto& [buft, mb] : llama_get_memory_breakdown(ctx.get())) {
    ggml_backend_dev_t dev = ggml_backend_buft_get_device(buft);
    const bool plain_host = ggml_backend_buft_is_host(buft) && std::string(ggml_backend_buft_name(buft)) == "CPU";
    tally.add("text weights", mb.model, dev, mmap && plain_host);
    tally.add("KV cache", mb.context, dev);
    tally.add("text compute", mb.compute, dev);
  }
  const auto image_tokens = static_cast<uint64_t>(options.image_token_limit());
  tally.add("kept image embeddings",
            kKeptImageEmbeddings * image_tokens * static_cast<uint64_t>(llama_model_n_embd_inp(model.get())) * sizeof(float), nullptr);
  return true;
}

// The vision tower: its weights and the compute buffer of its largest image.
bool measure_vision(const ModelFiles& files, const EngineOptions& options, Tally& tally) {
  // Two dry runs: the weights alone, then with the warm-up image's compute buffer reserved.
  mtmd_context_params vparams = vision_context_params(options);
  std::map<ggml_backend_dev_t, size_t> weights_usage, usage;
  try {
    vparams.warmup = false;
    weights_usage = mtmd_get_memory_usage(files.vision.c_str(), vparams);
    vparams.warmup = true;
    usage = mtmd_get_memory_usage(files.vision.c_str(), vparams);
  } catch (const std::exception& e) {
    spdlog::debug("vision memory dry run failed: {}", e.what());
    return false;
  }
  // The dry run allocates the warm-up's compute buffer for real: none at all means that allocation
  // failed here, and the real warm-up would fail the same way. (Per-window attention makes a small
  // model's buffer small: the tiny model's at 256 tokens is under 1 MiB.)
  uint64_t total = 0, weights = 0;
  for (const auto& [dev, bytes] : usage) total += bytes;
  for (const auto& [dev, bytes] : weights_usage) weights += bytes;
  spdlog::debug("vision dry run: {} bytes with the warm-up image, {} without", total, weights);
  if (total <= weights + 1) {
    throw MemoryError(files.vision.string() + ": not enough memory for the vision tower's compute buffer (" +
                      format_bytes(mapped_address_space()) + " in use); a smaller image size needs less");
  }
  tally.need.vision_compute_per_token = (total - weights) / kVisionWarmupTokens;
  for (const auto& [dev, bytes] : usage) {
    tally.add("vision tower", static_cast<uint64_t>(static_cast<double>(bytes) * kVisionComputeSlack), dev);
  }
  return true;
}

}  // namespace

MemoryNeed measure_memory_need(const ModelFiles& files, const EngineOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  Tally tally;
  if (!measure_text(files, options, tally) || !measure_vision(files, options, tally)) {
    spdlog::debug("{}: the engine's memory dry run failed; the model is loaded unchecked", files.text.string());
    return {};
  }
  if (files.lora) tally.add("LoRA adapter", file_size_or_zero(*files.lora), nullptr);
  const uint64_t threads = static_cast<uint64_t>(resolved_thread_count(options));
  tally.add("working memory", kFixedMargin + threads * kPerThreadRam, nullptr);
  MemoryNeed need = std::move(tally.need);
  need.devices.assign(tally.devices.begin(), tally.devices.end());
  // Arenas and stacks are reserved address space, mostly never touched.
  need.mapped += threads * (kPerThreadAddressSpace - kPerThreadRam);
  need.measured = true;
  spdlog::debug("{}: the engine's memory dry run took {:.2f} s", files.text.string(), seconds_since(start));
  return need;
}

void require_memory(const std::string& model, const MemoryNeed& need, const MemoryHeadroom& headroom) {
  if (!need.measured) return;
  std::string parts;
  for (const auto& [name, bytes] : need.parts) parts += (parts.empty() ? "" : ", ") + name + " " + format_bytes(bytes);
  // `kind`: what `wanted` counts ("of address space" or "of written memory ...").
  const auto refuse = [&](uint64_t wanted, const char* kind, const std::string& limit, uint64_t left) {
    throw MemoryError(model + ": not enough memory: the model and a context of its planned size need " + format_bytes(wanted) +
                      " " + kind + " (" + parts + "), " + limit + " leaves " + format_bytes(left) +
                      " (a smaller context, fewer questions at once or smaller images need less)");
  };
  const char* kWritten = "of written memory (weights read through mmap aside)";
  const uint64_t address_space = need.mapped + need.host;
  spdlog::debug("{}: memory need {} of address space, {} written ({}); {} mapped now", model, format_bytes(address_space),
                format_bytes(need.host), parts, format_bytes(mapped_address_space()));
  if (headroom.address_space && address_space > *headroom.address_space) {
    refuse(address_space, "of address space", "the address-space limit (ulimit -v)", *headroom.address_space);
  }
  if (headroom.cgroup && need.host > *headroom.cgroup) refuse(need.host, kWritten, "the memory cgroup's limit", *headroom.cgroup);
  if (headroom.ram && need.host > *headroom.ram) refuse(need.host, kWritten, "the machine's available memory", *headroom.ram);
  for (const auto& [device, bytes] : need.devices) {
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
      ggml_backend_dev_t dev = ggml_backend_dev_get(i);
      if (device != ggml_backend_dev_name(dev)) continue;
      size_t free = 0, total = 0;
      ggml_backend_dev_memory(dev, &free, &total);
      if (bytes > free) refuse(bytes, "of GPU memory", device + "'s free memory", free);
    }
  }
}

}  // namespace drivevqa
