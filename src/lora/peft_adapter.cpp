#include "lora/peft_adapter.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <regex>

#include "util/error.h"
#include "util/files.h"
#include "util/text.h"

namespace drivevqa {
namespace {

// PEFT names: base_model.model.<module>.lora_A.weight; newer transformers nest the language model
// and the vision tower under model.language_model / model.visual.
std::string hub_module_name(std::string name) {
  if (name.rfind("base_model.model.", 0) == 0) name = name.substr(17);
  if (name.rfind("model.language_model.", 0) == 0) return "model." + name.substr(21);
  if (name.rfind("model.visual.", 0) == 0) return name.substr(6);
  return name;
}

// PEFT matches pattern keys against the end of the module path (or as a full regex).
bool pattern_matches(const std::string& key, const std::string& module) {
  if (module == key) return true;
  if (module.size() > key.size() && module.compare(module.size() - key.size(), key.size(), key) == 0 &&
      module[module.size() - key.size() - 1] == '.') {
    return true;
  }
  try {
    return std::regex_match(module, std::regex("(.*\\.)?" + key));
  } catch (const std::regex_error&) {
    return false;
  }
}

}  // namespace

std::filesystem::path select_adapter_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  if (std::filesystem::exists(dir / "adapter_config.json", ec)) return dir;
  if (!std::filesystem::is_directory(dir, ec)) throw InputError(dir.string() + ": LoRA folder not found");
  long best = -1;
  std::filesystem::path chosen;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("checkpoint-", 0) != 0 || !std::filesystem::exists(e.path() / "adapter_config.json", ec)) continue;
    char* end = nullptr;
    const long n = std::strtol(name.c_str() + 11, &end, 10);
    if (end && *end == '\0' && n > best) {
      best = n;
      chosen = e.path();
    }
  }
  if (chosen.empty()) {
    throw InputError(dir.string() + ": no adapter_config.json here nor in any checkpoint-N sub-folder");
  }
  return chosen;
}

float peft_scale(const PeftConfig& c, const std::string& module, int* rank_out) {
  int r = c.r;
  float alpha = c.alpha;
  std::string alpha_key = "lora_alpha";
  for (const auto& [key, value] : c.rank_pattern) {
    if (pattern_matches(key, module)) r = value;
  }
  for (const auto& [key, value] : c.alpha_pattern) {
    if (pattern_matches(key, module)) {
      alpha = value;
      alpha_key = "alpha_pattern." + key;
    }
  }
  if (rank_out) *rank_out = r;
  const float scale = c.use_rslora ? alpha / std::sqrt(static_cast<float>(r)) : alpha / static_cast<float>(r);
  // A trained adapter's scale is a small factor (alpha / r, typically 0.5 to a few hundred); one far
  // beyond (lora_alpha 3e38) or non-finite turns every weight it touches into Inf or noise.
  constexpr float kMaxScale = 1e4f;
  if (!std::isfinite(scale) || std::fabs(scale) > kMaxScale) {
    const auto g = [](float x) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%g", static_cast<double>(x));
      return std::string(buf);
    };
    throw InputError("adapter_config.json: " + alpha_key + " " + g(alpha) + " with r " + std::to_string(r) + " gives " +
                     module + " a LoRA scale of " + g(scale) + " (usable: |scale| <= " + g(kMaxScale) + ")");
  }
  return scale;
}

PeftAdapter::PeftAdapter(const std::filesystem::path& dir) : dir_(select_adapter_dir(dir)) {
  const auto config_path = dir_ / "adapter_config.json";
  const auto bytes = read_file_bytes(config_path);
  const nlohmann::json j =
      parse_json(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), config_path.string());
  if (!j.is_object()) throw InputError(config_path.string() + ": expected a JSON object");
  const std::string where = config_path.string();
  try {
    read_config(j, where);
  } catch (const nlohmann::json::exception&) {
    throw InputError(where + ": a setting has the wrong type (peft_type, use_dora, modules_to_save, r, lora_alpha, "
                     "use_rslora, rank_pattern or alpha_pattern)");
  }
  if (config_.r <= 0) throw InputError(where + ": r must be positive");
  load_weights();
}

void PeftAdapter::read_config(const nlohmann::json& j, const std::string& where) {
  if (j.value("peft_type", "LORA") != "LORA") throw InputError(where + ": peft_type " + j.value("peft_type", "") + " is not LoRA");
  if (j.value("use_dora", false)) throw InputError(where + ": DoRA adapters (use_dora) cannot be applied by the engine");
  if (j.contains("modules_to_save") && j["modules_to_save"].is_array() && !j["modules_to_save"].empty()) {
    throw InputError(where + ": modules_to_save (" + j["modules_to_save"].dump() + ") replaces whole modules, which is not supported");
  }
  const auto number = [&](const nlohmann::json& v, const std::string& key, auto fallback) {
    if (v.is_null()) return fallback;
    if (auto n = json_number<decltype(fallback)>(v)) return *n;
    throw InputError(where + ": " + key + " is not a number in range");
  };
  config_.r = number(j.value("r", nlohmann::json()), "r", 8);
  config_.alpha = number(j.value("lora_alpha", nlohmann::json()), "lora_alpha", static_cast<float>(config_.r));
  config_.use_rslora = j.value("use_rslora", false);
  if (j.contains("rank_pattern") && j["rank_pattern"].is_object()) {
    for (const auto& [k, v] : j["rank_pattern"].items()) config_.rank_pattern[k] = number(v, "rank_pattern." + k, 0);
  }
  if (j.contains("alpha_pattern") && j["alpha_pattern"].is_object()) {
    for (const auto& [k, v] : j["alpha_pattern"].items()) config_.alpha_pattern[k] = number(v, "alpha_pattern." + k, 0.0f);
  }
}

void PeftAdapter::load_weights() {
  const auto weights = dir_ / "adapter_model.safetensors";
  std::error_code ec;
  if (!std::filesystem::exists(weights, ec)) {
    throw InputError(dir_.string() + ": no adapter_model.safetensors (adapter_model.bin is not supported; save with safe_serialization)");
  }
  file_ = std::make_unique<SafetensorsFile>(weights);
  std::map<std::string, LoraModule> by_module;
  for (const auto& [name, view] : file_->tensors()) {
    const std::string tensor = weights.string() + ": " + name;
    if (name.find("lora_magnitude_vector") != std::string::npos) throw InputError(tensor + ": DoRA magnitude vectors cannot be applied");
    if (name.find("modules_to_save") != std::string::npos) throw InputError(tensor + ": modules_to_save weights are not supported");
    if (name.find("lora_embedding_") != std::string::npos) throw InputError(tensor + ": LoRA on embeddings is not supported");
    const bool is_a = name.size() > 14 && name.compare(name.size() - 14, 14, ".lora_A.weight") == 0;
    const bool is_b = name.size() > 14 && name.compare(name.size() - 14, 14, ".lora_B.weight") == 0;
    if (!is_a && !is_b) throw InputError(tensor + ": not a LoRA A/B weight (biases and other tensors are not supported)");
    const std::string module = hub_module_name(name.substr(0, name.size() - 14));
    if (view.shape.size() != 2) throw InputError(tensor + ": LoRA weights must be 2-D");
    LoraModule& m = by_module[module];
    m.module = module;
    (is_a ? m.a : m.b) = &view;
  }
  for (auto& [module, m] : by_module) {
    if (!m.a || !m.b) throw InputError(weights.string() + ": " + module + " lacks its lora_" + (m.a ? "B" : "A") + " weight");
    m.scale = peft_scale(config_, module, &m.rank);
    if (m.a->shape[0] != m.rank || m.b->shape[1] != m.rank) {
      throw InputError(weights.string() + ": " + module + " has rank " + std::to_string(m.a->shape[0]) +
                       ", the config says " + std::to_string(m.rank));
    }
    modules_.push_back(m);
  }
  if (modules_.empty()) throw InputError(weights.string() + ": holds no LoRA weights");
}

}  // namespace drivevqa
