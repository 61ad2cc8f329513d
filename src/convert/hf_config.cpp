#include "convert/hf_config.h"

#include <nlohmann/json.hpp>

#include <map>

#include "util/error.h"
#include "util/files.h"
#include "util/text.h"

namespace drivevqa {
namespace {

using Json = nlohmann::json;

Json read_json(const std::filesystem::path& path) {
  const auto bytes = read_file_bytes(path);
  return parse_json(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), path.string());
}

// The value as T; numbers only when they fit T (util/text.h json_number).
template <typename T>
std::optional<T> as(const Json& v) {
  if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
    return json_number<T>(v);
  } else {
    try {
      return v.get<T>();
    } catch (const Json::exception&) {
      return std::nullopt;
    }
  }
}

template <typename T>
T get(const Json& j, const char* key, const std::filesystem::path& file) {
  if (!j.contains(key)) throw InputError(file.string() + ": missing " + key);
  if (auto v = as<T>(j.at(key))) return *v;
  throw InputError(file.string() + ": " + key + " has the wrong type or is out of range");
}

template <typename T>
T get_or(const Json& j, const char* key, T fallback) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  return as<T>(*it).value_or(fallback);
}

// Added tokens whose text looks like <|...|> are control tokens even when not marked special.
bool looks_special(const std::string& t) { return t.size() > 4 && t.rfind("<|", 0) == 0 && t.substr(t.size() - 2) == "|>"; }

void require_positive(int value, const std::string& key, const std::string& file) {
  if (value <= 0) throw InputError(file + ": " + key + " is " + std::to_string(value) + ", expected at least 1");
}

void require_divides(int divisor, const std::string& divisor_key, int value, const std::string& value_key, const std::string& file) {
  if (value % divisor != 0) {
    throw InputError(file + ": " + divisor_key + " " + std::to_string(divisor) + " does not divide " + value_key + " " + std::to_string(value));
  }
}

// Numbers the engine can run (the rules engine/gguf_check.h applies to the GGUF written from
// them): llama.cpp asserts or divides by these, so no file is written from a config that breaks one.
void check_text_numbers(const TextShape& t, const std::string& file) {
  require_positive(t.hidden, "hidden_size", file);
  require_positive(t.layers, "num_hidden_layers", file);
  require_positive(t.heads, "num_attention_heads", file);
  require_positive(t.kv_heads, "num_key_value_heads", file);
  require_positive(t.ffn, "intermediate_size", file);
  require_positive(t.vocab, "vocab_size", file);
  require_positive(t.context_length, "max_position_embeddings", file);
  if (t.layers > 512) throw InputError(file + ": num_hidden_layers is " + std::to_string(t.layers) + ", expected at most 512 (llama.cpp's limit)");
  require_divides(t.heads, "num_attention_heads", t.hidden, "hidden_size", file);
  require_divides(t.kv_heads, "num_key_value_heads", t.heads, "num_attention_heads", file);
  int64_t section_sum = 0;
  for (int s : t.rope_sections) {
    if (s < 0) throw InputError(file + ": rope_scaling.mrope_section holds " + std::to_string(s) + ", expected sections of 0 or more");
    section_sum += s;
  }
  if (t.rope_sections[0] + t.rope_sections[1] + t.rope_sections[2] == 0) {
    throw InputError(file + ": rope_scaling.mrope_section has no t, h or w section");
  }
  if (section_sum * 2 != t.head_dim()) {
    throw InputError(file + ": rope_scaling.mrope_section sums to " + std::to_string(section_sum) + ", expected half the head dimension " +
                     std::to_string(t.head_dim()) + " (hidden_size / num_attention_heads)");
  }
  if (!(t.rope_theta > 0)) throw InputError(file + ": rope_theta is " + std::to_string(t.rope_theta) + ", expected more than 0");
  if (!(t.rms_eps >= 0)) throw InputError(file + ": rms_norm_eps is " + std::to_string(t.rms_eps) + ", expected 0 or more");
}

void check_vision_numbers(const VisionShape& v, const HfVisionExtras& extras, const std::string& file) {
  require_positive(v.hidden, "vision_config.hidden_size", file);
  require_positive(v.blocks, "vision_config.depth", file);
  require_positive(v.heads, "vision_config.num_heads", file);
  require_positive(v.ffn, "vision_config.intermediate_size", file);
  require_positive(v.patch, "vision_config.patch_size", file);
  require_divides(v.heads, "vision_config.num_heads", v.hidden, "vision_config.hidden_size", file);
  // The vision M-RoPE rotates head_dim/2 values in four equal sections.
  if ((v.hidden / v.heads) % 4 != 0) {
    throw InputError(file + ": the vision head dimension " + std::to_string(v.hidden / v.heads) +
                     " (vision_config.hidden_size / num_heads) is not a multiple of 4");
  }
  // llama.cpp's clip swaps up/down projections whose widths look like an old export's.
  if (v.ffn == v.hidden) throw InputError(file + ": vision_config.intermediate_size equals hidden_size; they must differ");
  if (v.patch > 56) {
    throw InputError(file + ": vision_config.patch_size is " + std::to_string(v.patch) +
                     ", expected at most 56 (the engine's 112-pixel attention window holds 2x2 patches)");
  }
  if (extras.spatial_merge != 2) {
    throw InputError(file + ": vision_config.spatial_merge_size is " + std::to_string(extras.spatial_merge) + ", expected 2");
  }
}

}  // namespace

bool is_hf_model_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(dir / "config.json", ec)) return false;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".safetensors") return true;
  }
  return false;
}

HfModelConfig read_hf_config(const std::filesystem::path& dir) {
  const auto file = dir / "config.json";
  const Json root = read_json(file);
  if (!root.is_object()) throw InputError(file.string() + ": expected a JSON object");
  const auto archs = get_or<std::vector<std::string>>(root, "architectures", {});
  if (archs.empty() || (archs[0] != "Qwen2_5_VLForConditionalGeneration" && archs[0] != "Qwen2VLForConditionalGeneration")) {
    throw InputError(file.string() + ": architectures[0] is '" + (archs.empty() ? "" : archs[0]) +
                     "', expected Qwen2_5_VLForConditionalGeneration");
  }
  // transformers >= 4.52 nests the language model's settings in text_config.
  const Json& t = root.contains("text_config") && root["text_config"].is_object() && root["text_config"].contains("hidden_size")
                      ? root["text_config"] : root;
  HfModelConfig c;
  c.name = get_or<std::string>(root, "_name_or_path", dir.filename().string());
  c.text = TextShape{};
  c.text.hidden = get<int>(t, "hidden_size", file);
  c.text.layers = get<int>(t, "num_hidden_layers", file);
  c.text.heads = get<int>(t, "num_attention_heads", file);
  c.text.kv_heads = get_or<int>(t, "num_key_value_heads", c.text.heads);
  c.text.ffn = get<int>(t, "intermediate_size", file);
  c.text.vocab = get<int>(t, "vocab_size", file);
  c.text.context_length = get_or<int>(t, "max_position_embeddings", 32768);
  c.text.rope_theta = get_or<float>(t, "rope_theta", get_or<float>(root, "rope_theta", 1000000.0f));
  c.text.rms_eps = get_or<float>(t, "rms_norm_eps", get_or<float>(root, "rms_norm_eps", 1e-6f));
  c.vision.eps = c.text.rms_eps;  // the converter uses the global rms_norm_eps for the vision tower
  c.tied_embeddings = get_or<bool>(root, "tie_word_embeddings", get_or<bool>(t, "tie_word_embeddings", false));
  const Json scaling = t.contains("rope_scaling") ? t["rope_scaling"] : root.value("rope_scaling", Json::object());
  const auto sections = get_or<std::vector<int>>(scaling, "mrope_section", {});
  if (sections.empty() || sections.size() > 4) throw InputError(file.string() + ": rope_scaling.mrope_section is missing");
  for (size_t i = 0; i < sections.size(); ++i) c.text.rope_sections[i] = sections[i];
  check_text_numbers(c.text, file.string());

  if (!root.contains("vision_config") || !root["vision_config"].is_object()) throw InputError(file.string() + ": missing vision_config");
  const Json& v = root["vision_config"];
  c.vision = VisionShape{};
  c.vision.hidden = get<int>(v, "hidden_size", file);
  c.vision.blocks = get<int>(v, "depth", file);
  c.vision.heads = get<int>(v, "num_heads", file);
  c.vision.ffn = get<int>(v, "intermediate_size", file);
  c.vision.patch = get_or<int>(v, "patch_size", 14);
  c.vision_extras.temporal_patch = get_or<int>(v, "temporal_patch_size", 2);
  c.vision_extras.spatial_merge = get_or<int>(v, "spatial_merge_size", 2);
  const auto full = get_or<std::vector<int>>(v, "fullatt_block_indexes", {});
  if (!full.empty()) {
    // Evenly spaced k-1, 2k-1, ...: the engine only knows a period.
    const int period = full[0] + 1;
    // Full attention in every block would be n_wa_pattern 1, on which llama.cpp's clip aborts.
    if (period < 2) throw InputError(file.string() + ": vision_config.fullatt_block_indexes must start at block 1 or later");
    for (size_t i = 0; i < full.size(); ++i) {
      if (full[i] != static_cast<int>(i + 1) * period - 1) {
        throw InputError(file.string() + ": fullatt_block_indexes are not evenly spaced");
      }
    }
    c.vision.full_attention_every = period;
  }
  if (c.vision_extras.temporal_patch != 2) throw InputError(file.string() + ": temporal_patch_size must be 2");
  check_vision_numbers(c.vision, c.vision_extras, file.string());
  const auto pre = dir / "preprocessor_config.json";
  std::error_code ec;
  if (std::filesystem::exists(pre, ec)) {
    const Json p = read_json(pre);
    const auto mean = get_or<std::vector<float>>(p, "image_mean", {});
    const auto std = get_or<std::vector<float>>(p, "image_std", {});
    if (mean.size() == 3) std::copy(mean.begin(), mean.end(), c.vision_extras.image_mean.begin());
    if (std.size() == 3) std::copy(std.begin(), std.end(), c.vision_extras.image_std.begin());
    for (float v : c.vision_extras.image_std) {
      if (v == 0) throw InputError(pre.string() + ": image_std holds 0 (pixels are divided by it)");
    }
  }
  return c;
}

HfTokenizer read_hf_tokenizer(const std::filesystem::path& dir, int vocab_size) {
  const auto file = dir / "tokenizer.json";
  const Json j = read_json(file);
  if (!j.contains("model") || !j["model"].contains("vocab") || !j["model"]["vocab"].is_object()) {
    throw InputError(file.string() + ": missing model.vocab");
  }
  HfTokenizer tok;
  QwenVocab& v = tok.vocab;
  v.tokens.assign(static_cast<size_t>(vocab_size), "");
  v.types.assign(static_cast<size_t>(vocab_size), kTokenUnused);
  std::map<std::string, int32_t> ids;
  const auto place = [&](int64_t id, const std::string& text, int32_t type) {
    if (id < 0 || id >= vocab_size) throw InputError(file.string() + ": token id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(vocab_size));
    v.tokens[static_cast<size_t>(id)] = text;
    v.types[static_cast<size_t>(id)] = type;
    ids[text] = static_cast<int32_t>(id);
  };
  for (const auto& [text, id] : j["model"]["vocab"].items()) place(json_number<int64_t>(id).value_or(-1), text, kTokenNormal);
  for (const auto& t : j.value("added_tokens", Json::array())) {
    const std::string text = t.value("content", "");
    const bool special = t.value("special", false);
    place(t.value("id", int64_t{-1}), text, special || looks_special(text) ? kTokenControl : kTokenUserDefined);
  }
  for (size_t id = 0; id < v.tokens.size(); ++id) {
    if (v.tokens[id].empty()) v.tokens[id] = "[PAD" + std::to_string(id) + "]";
  }
  for (const auto& m : j["model"].value("merges", Json::array())) {
    if (m.is_string()) v.merges.push_back(m.get<std::string>());
    else if (m.is_array() && m.size() == 2) v.merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
  }

  const auto config_file = dir / "tokenizer_config.json";
  std::error_code ec;
  const Json tc = std::filesystem::exists(config_file, ec) ? read_json(config_file) : Json::object();
  const Json model_config = read_json(dir / "config.json");
  const auto token_id = [&](const char* key, const char* config_key) -> std::optional<int32_t> {
    const auto it = tc.find(key);
    if (it != tc.end()) {
      const std::string text = it->is_string() ? it->get<std::string>() : it->is_object() ? it->value("content", "") : "";
      if (const auto found = ids.find(text); found != ids.end()) return found->second;
    }
    if (model_config.contains(config_key) && model_config[config_key].is_number_integer()) return model_config[config_key].get<int32_t>();
    return std::nullopt;
  };
  tok.bos = token_id("bos_token", "bos_token_id");
  tok.eos = token_id("eos_token", "eos_token_id");
  tok.pad = token_id("pad_token", "pad_token_id");
  tok.chat_template = tc.value("chat_template", "");
  if (tok.chat_template.empty()) {
    const auto jinja = dir / "chat_template.jinja";
    const auto json_template = dir / "chat_template.json";
    if (std::filesystem::exists(jinja, ec)) {
      const auto bytes = read_file_bytes(jinja);
      tok.chat_template.assign(bytes.begin(), bytes.end());
    } else if (std::filesystem::exists(json_template, ec)) {
      tok.chat_template = read_json(json_template).value("chat_template", "");
    }
  }
  return tok;
}

}  // namespace drivevqa
