// Weight values an engine cannot use: NaN or Inf anywhere, and magnitudes a narrower output type
// cannot hold (fp16 tops out at 65504). One NaN in one weight makes every answer garbage with exit
// 0, so converters scan every tensor they touch, while the data is in hand, and a GGUF handed in
// directly is sampled before the engine loads it.
//
// What must hold: a scan costs one branch-free pass over the values (it vectorises: a running
// max of |bits| per block); a refusal names the tensor, the element index and the value, and for
// an fp16 overflow it suggests bf16.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <ggml.h>
#include <gguf.h>

namespace drivevqa {

struct ValueScan {
  static constexpr size_t kNone = static_cast<size_t>(-1);
  size_t first_non_finite = kNone;  // index of the first NaN/Inf, kNone when all are finite
  float max_abs = 0;                // the largest finite magnitude (of the values before the first bad one)
  bool finite() const { return first_non_finite == kNone; }
};

ValueScan scan_f32(const float* values, size_t n);
ValueScan scan_f16(const uint16_t* values, size_t n);
ValueScan scan_bf16(const uint16_t* values, size_t n);
// `n` values of `type` (F32, F16 or BF16; any other type scans as empty), read in their own type.
ValueScan scan_values(const void* data, size_t n, ggml_type type);
// Value i of `data` (F32, F16 or BF16) as f32.
float value_at(const void* data, size_t i, ggml_type type);

// Throws InputError "<what>: element <index> of <count> is <value> (...)".
[[noreturn]] void refuse_non_finite(const std::string& what, size_t index, size_t count, float value);

// Throws InputError naming `what` when values of magnitude `max_abs` cannot be stored as `type`
// (F16: beyond 65504; Q8_0: its fp16 block scale amax/127 overflows). F32/BF16 hold any finite f32.
void require_representable(float max_abs, ggml_type type, const std::string& what);

// Both checks for values about to be written as `type`.
void check_weight_values(const float* values, size_t n, ggml_type type, const std::string& what);

// A GGUF handed in directly, looked at cheaply: each F32/F16/BF16 tensor's first and last 64 KB
// and two blocks between (at most 256 KB a tensor, never the whole file; quantized tensors are
// not looked at). Throws ModelError "<file>: tensor <name>: element i of n is NaN ..." for a
// NaN/Inf found; a file that cannot be read is left to the engine. Tensor bounds must be checked.
void check_gguf_sampled_values(const gguf_context* gguf, const std::string& file);

}  // namespace drivevqa
