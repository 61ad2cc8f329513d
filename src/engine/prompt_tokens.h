// Prompts as the engine takes them: text tokens and image placeholders (tokenize), then the same
// with the vision tower's output for every image (encode). Neither step needs an inference context,
// so a frame's images can be encoded once and evaluated into any number of contexts.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "engine/handles.h"
#include "engine/image.h"
#include "engine/model.h"

namespace drivevqa {

// A prompt split into text tokens and image placeholders; owns its mtmd chunks.
class TokenizedPrompt {
 public:
  size_t chunk_count() const;
  const mtmd_input_chunk* chunk(size_t i) const;
  bool is_image(size_t i) const;
  size_t token_count() const;    // KV cells the prompt occupies
  size_t image_token_count(size_t first_image = 0) const;  // of those, the cells of images first_image, ...
  llama_pos position_count() const;  // M-RoPE positions it advances (an image: max(w, h) in 28 px units)

 private:
  friend TokenizedPrompt tokenize(const Model&, const std::string&, std::span<const RgbImage* const>, bool);
  MtmdChunksPtr chunks_;
};

// A tokenized prompt whose image chunks have been through the vision tower.
struct EncodedPrompt {
  TokenizedPrompt prompt;
  std::vector<std::vector<float>> image_embeddings;  // per chunk; empty for text chunks
};

// `text` holds one image marker (mtmd_default_marker()) per image, in order.
// Throws InputError on a marker/image mismatch or an image the engine cannot take.
// add_special: let the vocabulary add its start-of-text token (only at the start of a sequence).
TokenizedPrompt tokenize(const Model& model, const std::string& text, std::span<const RgbImage* const> images,
                         bool add_special = true);

// Vision-tower outputs of one model by image content id, so that an image shared by many prompts
// (a frame's six cameras, ~22 questions) goes through the vision tower once. Keeps the most
// recently used `capacity` images.
class EmbeddingCache {
 public:
  explicit EmbeddingCache(size_t capacity) : capacity_(capacity) {}
  const std::vector<float>* find(const std::string& id);
  void put(const std::string& id, std::vector<float> embedding);
  size_t encodes() const { return encodes_; }  // images that went through the vision tower

 private:
  friend EncodedPrompt encode(const Model&, TokenizedPrompt, EmbeddingCache*);
  size_t capacity_;
  size_t encodes_ = 0;
  std::vector<std::pair<std::string, std::vector<float>>> entries_;  // most recent last
};

// Runs the vision tower over every image chunk not already in `cache` (which must belong to
// `model`). Throws ModelError when encoding fails.
EncodedPrompt encode(const Model& model, TokenizedPrompt prompt, EmbeddingCache* cache = nullptr);

}  // namespace drivevqa
