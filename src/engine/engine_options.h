// What a model is made of on disk and how the engine runs it: the inputs of Model::load
// (engine/model.h) and of its memory check (engine/memory_plan.h).
#pragma once

#include <llama.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace drivevqa {

// The two GGUF files of one model, as `make-model` and `convert` write them into a folder.
struct ModelFiles {
  std::filesystem::path text;    // model.gguf  (arch qwen2vl)
  std::filesystem::path vision;  // mmproj.gguf (clip, projector qwen2.5vl_merger)
  std::optional<std::filesystem::path> lora;  // a GGUF LoRA applied to the text model in every context
};

enum class FlashAttention { kAuto, kOn, kOff };

// Most vision tokens per image when neither the options nor the mmproj set a limit.
constexpr int kDefaultImageMaxTokens = 4096;

struct EngineOptions {
  int n_threads = 0;          // 0: all hardware threads
  int n_gpu_layers = 0;       // layers offloaded to the GPU (and RPC servers); -1 all (needs a GPU build or servers)
  // host:port of llama.cpp rpc-server processes (engine/rpc_devices.h): the text model's offloaded
  // layers go to their devices (then this machine's GPUs). Connected at first use (run and ask
  // connect before any work, so that an unreachable one is refused at start).
  std::vector<std::string> rpc_servers;
  FlashAttention flash_attention = FlashAttention::kAuto;
  int image_min_tokens = 0;   // 0: the mmproj's default
  int image_max_tokens = 0;   // 0: the mmproj's default, kDefaultImageMaxTokens
  bool warmup = true;         // run the engine's warm-up passes at load time
  // The most vision tokens one image may take, as the plans count it.
  int image_token_limit() const { return image_max_tokens > 0 ? image_max_tokens : kDefaultImageMaxTokens; }
  // The largest inference context the caller will make (engine/session.h): the memory check at
  // load time reserves room for its KV cache and compute buffers.
  int planned_context = 4096;
  int planned_sequences = 1;
  ggml_type planned_kv_type = GGML_TYPE_F16;
};

int resolved_thread_count(const EngineOptions& options);
llama_flash_attn_type to_llama(FlashAttention fa);

// The flash-attention setting of text contexts: on the CPU, "auto" means off. llama.cpp's CPU
// flash-attention kernel rounds differently depending on which other sequences share the batch,
// while the plain kernel does not (measured: 11 of 69 demo answers drifted with it, none without),
// and it is no faster for short question suffixes. The vision tower keeps "auto" (6x faster there).
FlashAttention text_flash_attention(const EngineOptions& options);
// Whether a prompt evaluated alone (a frame's prefix) may still use the flash kernel where
// text_flash_attention turned "auto" off: only with an f16 KV cache (on bf16 K/V the CPU kernel is
// 4x slower than the plain one). See Session::evaluate_alone.
bool flash_when_alone(const EngineOptions& options, ggml_type kv_type);

}  // namespace drivevqa
