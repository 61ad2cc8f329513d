#include "modelgen/hf_model_writer.h"

#include <nlohmann/json.hpp>

#include <map>

#include "qwen25vl/qwen_vocab.h"
#include "qwen25vl/tensor_table.h"
#include "modelgen/safetensors_writer.h"
#include "util/error.h"
#include "util/atomic_file.h"
#include "util/files.h"

namespace drivevqa {
namespace {

using OrderedJson = nlohmann::ordered_json;

// One HF tensor and how to assemble it from the GGUF-named random tensors.
struct HfTensor {
  SafetensorsEntry entry;
  std::vector<std::string> parts;  // GGUF names, concatenated in order (fused qkv)
  bool temporal_taps = false;      // [out, c, t, kh, kw] interleaving the two temporal taps
};

std::vector<HfTensor> hf_tensors(const ModelPreset& p, bool new_layout) {
  const DimSizes sizes = dim_sizes(p.text, p.vision);
  std::vector<HfTensor> out;
  std::map<std::string, size_t> index;  // checkpoint name -> out
  for (Tower tower : {Tower::kText, Tower::kVision}) {
    const int64_t blocks = tower == Tower::kText ? p.text.layers : p.vision.blocks;
    for (const QwenTensor& t : written_tensors(tower, sizes, blocks)) {
      const std::string name = new_layout ? new_layout_name(t.hf) : t.hf;
      const auto [it, fresh] = index.emplace(name, out.size());
      if (fresh) out.push_back({{name, hf_shape(t)}, {}, t.rule->slice == HfSlice::kTemporalTap});
      out[it->second].parts.push_back(t.gguf);  // the table lists a fused tensor's parts in order
    }
  }
  return out;
}

OrderedJson config_json(const ModelPreset& p, const std::string& name) {
  const TextShape& t = p.text;
  const VisionShape& v = p.vision;
  OrderedJson full = OrderedJson::array();
  for (int i = v.full_attention_every - 1; i < v.blocks; i += v.full_attention_every) full.push_back(i);
  return OrderedJson{{"_name_or_path", name},
              {"architectures", {"Qwen2_5_VLForConditionalGeneration"}},
              {"model_type", "qwen2_5_vl"},
              {"hidden_size", t.hidden},
              {"intermediate_size", t.ffn},
              {"num_hidden_layers", t.layers},
              {"num_attention_heads", t.heads},
              {"num_key_value_heads", t.kv_heads},
              {"vocab_size", t.vocab},
              {"max_position_embeddings", t.context_length},
              {"rope_theta", t.rope_theta},
              {"rms_norm_eps", t.rms_eps},
              {"rope_scaling", {{"type", "mrope"}, {"mrope_section", {t.rope_sections[0], t.rope_sections[1], t.rope_sections[2]}}}},
              {"tie_word_embeddings", false},
              {"torch_dtype", "float32"},
              {"hidden_act", "silu"},
              {"bos_token_id", kQwenEndOfText},
              {"eos_token_id", kQwenImEnd},
              {"vision_start_token_id", 151652},
              {"vision_end_token_id", 151653},
              {"image_token_id", 151655},
              {"video_token_id", 151656},
              {"vision_config",
               {{"depth", v.blocks}, {"hidden_size", v.hidden}, {"intermediate_size", v.ffn}, {"num_heads", v.heads},
                {"in_chans", 3}, {"out_hidden_size", t.hidden}, {"patch_size", v.patch}, {"spatial_merge_size", 2},
                {"temporal_patch_size", 2}, {"window_size", 112}, {"fullatt_block_indexes", full},
                {"tokens_per_second", 2}, {"hidden_act", "silu"}}}};
}

// A plain (sorted) json: an insertion-ordered object of 150k entries would be quadratic to build.
nlohmann::json tokenizer_json(const QwenVocab& vocab) {
  using OrderedJson = nlohmann::json;
  OrderedJson model_vocab = OrderedJson::object();
  OrderedJson added = OrderedJson::array();
  for (size_t id = 0; id < vocab.tokens.size(); ++id) {
    const int32_t type = vocab.types[id];
    if (type == kTokenNormal) {
      model_vocab[vocab.tokens[id]] = id;
    } else if (type == kTokenControl || type == kTokenUserDefined) {
      // As in the real file: only some control-looking tokens are marked special.
      const std::string& text = vocab.tokens[id];
      const bool special = text.rfind("<|fim", 0) != 0 && text != "<|repo_name|>" && text != "<|file_sep|>" && type == kTokenControl;
      added.push_back({{"id", id}, {"content", text}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                       {"normalized", false}, {"special", special}});
    }
  }
  return OrderedJson{{"version", "1.0"},
              {"truncation", nullptr},
              {"padding", nullptr},
              {"added_tokens", added},
              {"normalizer", {{"type", "NFC"}}},
              {"pre_tokenizer",
               {{"type", "Sequence"},
                {"pretokenizers",
                 {{{"type", "Split"},
                   {"pattern", {{"Regex", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}}},
                   {"behavior", "Isolated"},
                   {"invert", false}},
                  {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}}}}},
              {"post_processor", nullptr},
              {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}},
              {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
                         {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false}, {"vocab", model_vocab},
                         {"merges", vocab.merges}}}};
}

template <typename J>
void write_json(const std::filesystem::path& path, const J& j) {
  write_file_atomic(path, j.dump(2) + "\n");
}

}  // namespace

void write_random_hf_model(const std::filesystem::path& dir, const RandomModelOptions& options, bool new_layout) {
  const ModelPreset& preset = model_preset(options.preset);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw OutputError(dir.string() + ": cannot create folder (" + ec.message() + ")");
  std::map<std::string, TensorPlan> plans;
  for (const auto& t : text_tensor_plan(preset, GGML_TYPE_F32, options.init_scale)) plans.emplace(t.name, t);
  for (const auto& t : vision_tensor_plan(preset, GGML_TYPE_F32)) plans.emplace(t.name, t);
  const std::vector<HfTensor> tensors = hf_tensors(preset, new_layout);
  std::map<std::string, const HfTensor*> by_name;
  std::vector<SafetensorsEntry> entries;
  for (const HfTensor& t : tensors) {
    by_name[t.entry.name] = &t;
    entries.push_back(t.entry);
  }
  write_safetensors_f32(dir / "model.safetensors", entries, [&](const SafetensorsEntry& e) {
    const HfTensor& t = *by_name.at(e.name);
    std::vector<std::vector<float>> parts;
    for (const std::string& gguf : t.parts) parts.push_back(random_tensor_values(options.seed, plans.at(gguf)));
    if (!t.temporal_taps) {
      std::vector<float> out;
      for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
      return out;
    }
    // [out, c, t, kh, kw] from two [out, c, kh, kw] taps.
    const size_t per_channel = static_cast<size_t>(e.shape[3] * e.shape[4]);
    const size_t channels = static_cast<size_t>(e.shape[0] * e.shape[1]);
    std::vector<float> out(2 * channels * per_channel);
    for (size_t oc = 0; oc < channels; ++oc)
      for (size_t tap = 0; tap < 2; ++tap)
        std::copy_n(parts[tap].begin() + static_cast<std::ptrdiff_t>(oc * per_channel), per_channel,
                    out.begin() + static_cast<std::ptrdiff_t>((oc * 2 + tap) * per_channel));
    return out;
  }, {{"format", "pt"}});

  const std::string name = random_model_name(options);
  write_json(dir / "config.json", config_json(preset, name));
  const QwenVocab vocab = qwen25vl_vocab(kQwenEndOfText + 22);  // the tokenizer's own entries, no padding
  write_json(dir / "tokenizer.json", tokenizer_json(vocab));
  write_json(dir / "tokenizer_config.json",
             OrderedJson{{"add_bos_token", false}, {"add_prefix_space", false}, {"bos_token", nullptr},
                  {"eos_token", "<|im_end|>"}, {"pad_token", "<|endoftext|>"}, {"unk_token", nullptr},
                  {"errors", "replace"}, {"model_max_length", 131072}, {"split_special_tokens", false},
                  {"tokenizer_class", "Qwen2Tokenizer"}, {"chat_template", qwen25vl_chat_template()}});
  write_json(dir / "preprocessor_config.json",
             OrderedJson{{"image_processor_type", "Qwen2VLImageProcessor"}, {"do_resize", true}, {"do_rescale", true},
                  {"do_normalize", true}, {"do_convert_rgb", true}, {"rescale_factor", 1.0 / 255},
                  {"image_mean", {0.48145466, 0.4578275, 0.40821073}}, {"image_std", {0.26862954, 0.26130258, 0.27577711}},
                  {"min_pixels", 3136}, {"max_pixels", 12845056}, {"patch_size", 14}, {"temporal_patch_size", 2},
                  {"merge_size", 2}, {"processor_class", "Qwen2_5_VLProcessor"}});
}

}  // namespace drivevqa
