// Lower-bit text models through llama.cpp's own quantizer (llama_model_quantize), as llama-quantize.
// The vision tower (mmproj) keeps its type.
#pragma once

#include <filesystem>
#include <string>

namespace drivevqa {

// q4_0, q5_0, q8_0, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k. Throws UsageError for other names.
int quantize_ftype(const std::string& name);

// Replaces `model` (a text model.gguf) by its quantized form. Throws ModelError on failure.
void quantize_text_model(const std::filesystem::path& model, const std::string& type, int threads);

}  // namespace drivevqa
