#include "qwen25vl/qwen_vocab.h"

#include <gguf.h>

#include <memory>

#include "util/error.h"

extern "C" const char drivevqa_qwen2_vocab_begin[];
extern "C" const char drivevqa_qwen2_vocab_end[];

namespace drivevqa {
namespace {

constexpr int32_t kBaseVocab = 151643;  // plain BPE tokens in the base vocabulary

struct AddedToken {
  const char* text;
  int32_t type;
};

// Qwen2.5-VL's added tokens, ids 151643.. in order.
constexpr AddedToken kAddedTokens[] = {
    {"<|endoftext|>", kTokenControl},      {"<|im_start|>", kTokenControl},     {"<|im_end|>", kTokenControl},
    {"<|object_ref_start|>", kTokenControl}, {"<|object_ref_end|>", kTokenControl}, {"<|box_start|>", kTokenControl},
    {"<|box_end|>", kTokenControl},        {"<|quad_start|>", kTokenControl},   {"<|quad_end|>", kTokenControl},
    {"<|vision_start|>", kTokenControl},   {"<|vision_end|>", kTokenControl},   {"<|vision_pad|>", kTokenControl},
    {"<|image_pad|>", kTokenControl},      {"<|video_pad|>", kTokenControl},    {"<tool_call>", kTokenUserDefined},
    {"</tool_call>", kTokenUserDefined},   {"<|fim_prefix|>", kTokenControl},   {"<|fim_middle|>", kTokenControl},
    {"<|fim_suffix|>", kTokenControl},     {"<|fim_pad|>", kTokenControl},      {"<|repo_name|>", kTokenControl},
    {"<|file_sep|>", kTokenControl},
};

using GgufPtr = std::unique_ptr<gguf_context, decltype(&gguf_free)>;

std::vector<std::string> read_strings(const gguf_context* g, const char* key) {
  const int64_t id = gguf_find_key(g, key);
  if (id < 0) throw Error(ExitCode::kFailure, std::string("embedded Qwen2 vocabulary lacks ") + key);
  std::vector<std::string> out(gguf_get_arr_n(g, id));
  for (size_t i = 0; i < out.size(); ++i) out[i] = gguf_get_arr_str(g, id, i);
  return out;
}

}  // namespace

QwenVocab qwen25vl_vocab(int size) {
  const int32_t n_added = static_cast<int32_t>(std::size(kAddedTokens));
  if (size < kBaseVocab + n_added) throw UsageError("vocabulary size " + std::to_string(size) + " is too small");
  gguf_init_params params{/*no_alloc=*/true, /*ctx=*/nullptr};
  GgufPtr g(gguf_init_from_buffer(drivevqa_qwen2_vocab_begin, drivevqa_qwen2_vocab_end - drivevqa_qwen2_vocab_begin,
                                  params),
            &gguf_free);
  if (!g) throw Error(ExitCode::kFailure, "embedded Qwen2 vocabulary is unreadable");
  QwenVocab vocab;
  std::vector<std::string> base = read_strings(g.get(), "tokenizer.ggml.tokens");
  if (static_cast<int32_t>(base.size()) < kBaseVocab) throw Error(ExitCode::kFailure, "embedded Qwen2 vocabulary is too short");
  base.resize(kBaseVocab);
  vocab.tokens = std::move(base);
  vocab.types.assign(kBaseVocab, kTokenNormal);
  for (const AddedToken& t : kAddedTokens) {
    vocab.tokens.emplace_back(t.text);
    vocab.types.push_back(t.type);
  }
  for (int32_t id = kBaseVocab + n_added; id < size; ++id) {
    vocab.tokens.push_back("[PAD" + std::to_string(id) + "]");
    vocab.types.push_back(kTokenUnused);
  }
  vocab.merges = read_strings(g.get(), "tokenizer.ggml.merges");
  return vocab;
}

const std::string& qwen25vl_chat_template() {
  static const std::string kTemplate =
      "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
      "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
      "<|im_start|>{{ message['role'] }}\n"
      "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
      "{% else %}{% for content in message['content'] %}"
      "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
      "{% set image_count.value = image_count.value + 1 %}"
      "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
      "<|vision_start|><|image_pad|><|vision_end|>"
      "{% elif content['type'] == 'video' or 'video' in content %}"
      "{% set video_count.value = video_count.value + 1 %}"
      "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
      "<|vision_start|><|video_pad|><|vision_end|>"
      "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
      "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
  return kTemplate;
}

}  // namespace drivevqa
