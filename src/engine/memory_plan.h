// Whether a model fits, decided before any of it is loaded.
//
// The engine itself says what a model will take: llama.cpp and libmtmd lay out the weights, the
// KV cache of the largest context the caller plans (EngineOptions::planned_*) and the compute
// buffers of the text model and the vision tower without allocating them (their no_alloc dry run,
// the one llama.cpp's own --fit uses). That need, plus a margin for what the engine does not count
// (threads' stacks, malloc arenas, images and embeddings in flight), is set against each limit of
// util/memory_limits.h. A model that does not fit is refused with a MemoryError (exit 6) naming
// the limit and the figures; with the 72B model the run then hands its items to the 7B model.
//
// What must hold: the need is never below what loading and answering within the plan allocates
// (tests/memory_limit_test.cpp sweeps `ulimit -v` to check that no run dies by a signal).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/engine_options.h"
#include "util/memory_limits.h"

namespace drivevqa {

struct MemoryNeed {
  // Text weights read through mmap: address space, but in RAM only as page cache the kernel can drop.
  uint64_t mapped = 0;
  // Host memory the run writes: KV cache, compute buffers, the vision tower, a LoRA adapter, margin.
  uint64_t host = 0;
  // GPU memory per device name.
  std::vector<std::pair<std::string, uint64_t>> devices;
  // The parts, for messages: ("text weights", bytes), ("KV cache", bytes), ...
  std::vector<std::pair<std::string, uint64_t>> parts;
  // The vision tower's compute buffer per image token beyond the warm-up's (engine/model.h).
  uint64_t vision_compute_per_token = 0;
  // False when the engine's dry run failed: nothing is known and nothing is refused.
  bool measured = false;
};

// Asks the engine. Never throws for a file the engine refuses: the real load says why.
MemoryNeed measure_memory_need(const ModelFiles& files, const EngineOptions& options);

// Throws MemoryError when `need` is larger than a limit in `headroom`; `model` names the model
// (a file path) in the message.
void require_memory(const std::string& model, const MemoryNeed& need, const MemoryHeadroom& headroom);

}  // namespace drivevqa
