// The Qwen2.5-VL tokenizer, built from the real Qwen2 BPE vocabulary that ships with llama.cpp
// (models/ggml-vocab-qwen2.gguf, embedded in the binary at build time).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace drivevqa {

// GGUF token types (llama_token_type).
enum QwenTokenType : int32_t { kTokenNormal = 1, kTokenControl = 3, kTokenUserDefined = 4, kTokenUnused = 5 };

constexpr int32_t kQwenEndOfText = 151643;  // also bos and pad
constexpr int32_t kQwenImEnd = 151645;      // eos: end of turn

struct QwenVocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<std::string> merges;
};

// Ids 0..151642 and the merges from the base vocabulary, Qwen2.5-VL's 22 added tokens at their
// real ids (151643..151664), then "[PAD<id>]" entries up to `size`.
QwenVocab qwen25vl_vocab(int size);

// The Qwen2-VL chat template (ChatML with vision placeholders), as the checkpoints carry it.
const std::string& qwen25vl_chat_template();

}  // namespace drivevqa
