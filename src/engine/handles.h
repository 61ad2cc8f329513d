// Owning handles for every llama.cpp / libmtmd object drivevqa creates. Each is a unique_ptr with the
// library's own free function, so no handle can leak on an exception path.
#pragma once

#include <llama.h>
#include <mtmd-helper.h>
#include <mtmd.h>

#include <memory>

namespace drivevqa {

template <auto FreeFn>
struct FreeWith {
  template <typename T>
  void operator()(T* p) const {
    if (p) FreeFn(p);
  }
};

using LlamaModelPtr = std::unique_ptr<llama_model, FreeWith<llama_model_free>>;
using LlamaContextPtr = std::unique_ptr<llama_context, FreeWith<llama_free>>;
using LlamaSamplerPtr = std::unique_ptr<llama_sampler, FreeWith<llama_sampler_free>>;
using LoraAdapterPtr = std::unique_ptr<llama_adapter_lora, FreeWith<llama_adapter_lora_free>>;
using MtmdContextPtr = std::unique_ptr<mtmd_context, FreeWith<mtmd_free>>;
using MtmdBitmapPtr = std::unique_ptr<mtmd_bitmap, FreeWith<mtmd_bitmap_free>>;
using MtmdChunksPtr = std::unique_ptr<mtmd_input_chunks, FreeWith<mtmd_input_chunks_free>>;

// llama_batch is a struct of owned arrays rather than a pointer.
class LlamaBatch {
 public:
  LlamaBatch(int32_t capacity, int32_t n_seq_max) : batch_(llama_batch_init(capacity, 0, n_seq_max)), capacity_(capacity) {}
  ~LlamaBatch() { llama_batch_free(batch_); }
  LlamaBatch(const LlamaBatch&) = delete;
  LlamaBatch& operator=(const LlamaBatch&) = delete;

  void clear() { batch_.n_tokens = 0; }
  // Appends one token of one sequence; the caller keeps the count within capacity().
  void add(llama_token token, llama_pos pos, llama_seq_id seq, bool wants_logits) {
    const int32_t i = batch_.n_tokens++;
    batch_.token[i] = token;
    batch_.pos[i] = pos;
    batch_.n_seq_id[i] = 1;
    batch_.seq_id[i][0] = seq;
    batch_.logits[i] = wants_logits;
  }
  int32_t size() const { return batch_.n_tokens; }
  int32_t capacity() const { return capacity_; }
  llama_batch& get() { return batch_; }

 private:
  llama_batch batch_;
  int32_t capacity_;
};

}  // namespace drivevqa
