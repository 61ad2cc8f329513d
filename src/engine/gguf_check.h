// Checks a model's GGUF files before llama.cpp sees them. llama.cpp and clip.cpp abort the process
// (GGML_ASSERT, division by zero, ggml_mul_mat shape asserts) on many malformed files instead of
// failing; these checks turn every such case into a ModelError (exit code 4).
//
// Read: metadata and tensor infos (gguf_init_from_file with no_alloc), and of tensor data only a
// sample of each float tensor for NaN/Inf (at most 256 KB a tensor; quantized tensors unchecked).
// Thrown: ModelError "<file>: <problem>", naming the key or tensor and what was expected vs found.
//
//   text model  (general.architecture qwen2vl): hparams present, typed and nonzero; heads divide the
//               width, kv heads divide heads, rope sections fit the head dimension; the tokenizer
//               lists; every tensor llama.cpp creates for qwen2vl with its derived shape, no other.
//   vision model (clip, projector qwen2.5vl_merger): clip.vision.* hparams; every tensor the
//               qwen2.5vl graph multiplies, with the shape it is multiplied with (clip.cpp checks
//               none); the projection width equals the text model's embedding width.
//   LoRA adapter (general.type adapter, adapter.type lora): each lora_a/lora_b pair fits its base
//               tensor in the text model and the two share one rank.
//   every file: no zero tensor dimension, known tensor types, tensor data inside the file.
#pragma once

#include <gguf.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace drivevqa {

// What the LoRA and vision checks need from the text model.
struct TextModelFacts {
  int64_t embedding_width = 0;
  std::map<std::string, std::array<int64_t, 4>> tensor_shapes;  // ggml ne of every tensor
};

// The files as Model::load gets them: missing file, not GGUF, unreadable GGUF and every check above.
TextModelFacts check_text_model_file(const std::filesystem::path& path);
void check_lora_file(const std::filesystem::path& path, const TextModelFacts& base);
// text_width: the text model's embedding width, when known.
void check_vision_model_file(const std::filesystem::path& path, std::optional<int64_t> text_width);

// The same checks on metadata in memory (e.g. a writer's context before anything is written);
// `file` names it in messages. Tensor data is not looked at.
TextModelFacts check_text_model(const gguf_context* gguf, const std::string& file);
void check_lora_adapter(const gguf_context* gguf, const std::string& file, const TextModelFacts& base);
void check_vision_model(const gguf_context* gguf, const std::string& file, std::optional<int64_t> text_width);

// Every tensor's data lies inside a file of file_size bytes (clip.cpp reads past the end unnoticed).
void check_tensor_data_in_file(const gguf_context* gguf, const std::string& file, uint64_t file_size);

}  // namespace drivevqa
