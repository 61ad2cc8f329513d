#include "engine/prompt_tokens.h"

#include <algorithm>
#include <cstdio>

#include "util/error.h"
#include "util/interrupt.h"
#include "util/text.h"

namespace drivevqa {
namespace {

// FNV-1a over the pixels: a stable id for mtmd's image cache tracking.
std::string content_id(const RgbImage& image) {
  return std::to_string(image.width) + "x" + std::to_string(image.height) + "-" +
         hex64(fnv1a64(image.pixels.data(), image.pixels.size()));
}

}  // namespace

size_t TokenizedPrompt::chunk_count() const { return mtmd_input_chunks_size(chunks_.get()); }
const mtmd_input_chunk* TokenizedPrompt::chunk(size_t i) const { return mtmd_input_chunks_get(chunks_.get(), i); }
bool TokenizedPrompt::is_image(size_t i) const {
  return mtmd_input_chunk_get_type(chunk(i)) == MTMD_INPUT_CHUNK_TYPE_IMAGE;
}
size_t TokenizedPrompt::token_count() const { return mtmd_helper_get_n_tokens(chunks_.get()); }
size_t TokenizedPrompt::image_token_count(size_t first_image) const {
  size_t tokens = 0, image = 0;
  for (size_t i = 0; i < chunk_count(); ++i) {
    if (is_image(i) && image++ >= first_image) tokens += mtmd_input_chunk_get_n_tokens(chunk(i));
  }
  return tokens;
}

llama_pos TokenizedPrompt::position_count() const { return mtmd_helper_get_n_pos(chunks_.get()); }

TokenizedPrompt tokenize(const Model& model, const std::string& text, std::span<const RgbImage* const> images,
                         bool add_special) {
  std::vector<MtmdBitmapPtr> bitmaps;
  std::vector<const mtmd_bitmap*> raw;
  for (const RgbImage* image : images) {
    bitmaps.emplace_back(mtmd_bitmap_init(image->width, image->height, image->pixels.data()));
    if (!bitmaps.back()) throw InputError("cannot hand an image of " + std::to_string(image->width) + "x" +
                                          std::to_string(image->height) + " to the engine");
    mtmd_bitmap_set_id(bitmaps.back().get(), content_id(*image).c_str());
    raw.push_back(bitmaps.back().get());
  }
  TokenizedPrompt prompt;
  prompt.chunks_.reset(mtmd_input_chunks_init());
  mtmd_input_text input{text.c_str(), text.size(), add_special, /*parse_special=*/true};
  const int32_t rc = mtmd_tokenize(model.vision(), prompt.chunks_.get(), &input, raw.data(), raw.size());
  if (rc == 1) {
    throw InputError("the prompt has a different number of image markers than the " + std::to_string(images.size()) +
                     " images given");
  }
  if (rc != 0) throw InputError("the engine could not preprocess the prompt's images (code " + std::to_string(rc) + ")");
  return prompt;
}

const std::vector<float>* EmbeddingCache::find(const std::string& id) {
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].first == id) {
      std::rotate(entries_.begin() + static_cast<std::ptrdiff_t>(i), entries_.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                  entries_.end());
      return &entries_.back().second;
    }
  }
  return nullptr;
}

void EmbeddingCache::put(const std::string& id, std::vector<float> embedding) {
  if (capacity_ == 0) return;
  if (entries_.size() >= capacity_) entries_.erase(entries_.begin());
  entries_.emplace_back(id, std::move(embedding));
}

EncodedPrompt encode(const Model& model, TokenizedPrompt prompt, EmbeddingCache* cache) {
  EncodedPrompt encoded{std::move(prompt), {}};
  const size_t n = encoded.prompt.chunk_count();
  encoded.image_embeddings.resize(n);
  const size_t width = static_cast<size_t>(model.embedding_width());
  for (size_t i = 0; i < n; ++i) {
    if (!encoded.prompt.is_image(i)) continue;
    const mtmd_input_chunk* chunk = encoded.prompt.chunk(i);
    const std::string id = mtmd_input_chunk_get_id(chunk) ? mtmd_input_chunk_get_id(chunk) : "";
    const size_t floats = width * mtmd_input_chunk_get_n_tokens(chunk);
    if (cache && !id.empty()) {
      if (const std::vector<float>* hit = cache->find(id); hit && hit->size() == floats) {
        encoded.image_embeddings[i] = *hit;
        continue;
      }
    }
    throw_if_interrupted();  // an image takes seconds at full resolution
    model.require_room_to_encode(mtmd_input_chunk_get_n_tokens(chunk));
    if (mtmd_encode_chunk(model.vision(), chunk) != 0) {
      throw ModelError("the vision tower failed to encode image " + std::to_string(i) + " (out of memory?)");
    }
    const float* embd = mtmd_get_output_embd(model.vision());
    encoded.image_embeddings[i].assign(embd, embd + floats);
    if (cache) {
      ++cache->encodes_;
      if (!id.empty()) cache->put(id, encoded.image_embeddings[i]);
    }
  }
  return encoded;
}

}  // namespace drivevqa
