// Merging LoRA pairs into a copy of a base GGUF: W' = W + s*B*A, computed in f32 (each product
// summed in double, as PEFT's merge is exact up to rounding) and stored in W's own type.
//
// What must hold: every tensor the pairs change is rewritten and every other tensor and key is
// copied byte for byte, in the base's order; a quantized W is dequantized, merged and quantized
// again to its own type (the same block layout, so a q4_k_m mix stays that mix); a pair that does
// not fit the base, two pairs on one tensor, or a merged value the type cannot hold is refused
// naming the tensor, before the output exists. The base is read through a mapping, one tensor at
// a time, so a 7B model is never in memory as a whole.
#pragma once

#include <ggml.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "lora/peft_adapter.h"

namespace drivevqa {

// f32, f16 or bf16: merged in place of the exact float weight.
bool is_float_weight_type(ggml_type type);

// True when every 2-D tensor of the GGUF file is f32, f16 or bf16 (no quantized weights). Throws
// ModelError when the file cannot be read as GGUF.
bool has_float_weights(const std::filesystem::path& gguf);

// Each tensor's (ne0, ne1) by name, to check an adapter against the model it is meant for.
using TensorShapes = std::map<std::string, std::pair<int64_t, int64_t>>;
TensorShapes gguf_tensor_shapes(const std::filesystem::path& gguf);

// Throws InputError "<where>: <module> ... <tensor> ..." when the pair's target is missing from
// `shapes` or has other input/output widths (an adapter for another model size).
void check_lora_fits(const LoraModule& m, const LoraTarget& t, const TensorShapes& shapes, const std::string& where);

// w (the target's [out, in] rows, row-major) += s * B[rows] * A, each element's products summed in
// double in rank order. Rows are shared among the hardware threads; the result does not depend
// on how many.
void add_lora_delta(const LoraModule& m, const LoraTarget& t, std::span<float> w);

// Writes `out` (a complete file or none): `base` with the pairs of `modules` merged into the
// tensors they target. Throws InputError naming `where` (the adapter) and the tensor for a pair
// the base lacks or that has another shape, two pairs on one tensor, or a merged value its type
// cannot hold; ModelError when the base is not readable GGUF or a targeted tensor's type cannot be
// quantized again without an importance matrix (the IQ types; --lora_mode runtime then).
void write_merged_gguf(const std::vector<const LoraModule*>& modules, const std::filesystem::path& base,
                       const std::filesystem::path& out, const std::string& where);

}  // namespace drivevqa
