#include "lora/peft_adapter.h"

#include <nlohmann/json.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "qwen25vl/tensor_table.h"
#include "util/error.h"
#include "util/files.h"
#include "util/text.h"

namespace drivevqa {
namespace {

// PEFT names: base_model.model.<module>.lora_A.weight, the module in any checkpoint layout.
std::string hub_module_name(std::string name) {
  if (name.rfind("base_model.model.", 0) == 0) name = name.substr(17);
  return hub_name(name);
}

// rank_pattern / alpha_pattern keys: PEFT's get_pattern_key, re.match("(.*\\.)?(key)$", module).
bool pattern_matches(const std::string& key, const std::string& module) {
  if (module == key) return true;
  if (module.size() > key.size() && module.compare(module.size() - key.size(), key.size(), key) == 0 &&
      module[module.size() - key.size() - 1] == '.') {
    return true;
  }
  return PeftRegex("(?:.*\\.)?(?:" + key + ")", "adapter_config.json: pattern key " + key).full_match(module);
}

bool ends_with_segment(const std::string& module, const std::string& entry) {
  return module == entry || (module.size() > entry.size() && module[module.size() - entry.size() - 1] == '.' &&
                             module.compare(module.size() - entry.size(), entry.size(), entry) == 0);
}

// The layer index PEFT reads for layers_to_transform: the first numeric segment followed by a dot,
// after a segment (re.match(r".*?\.[^.]*\.(\d+)\.")) or after layers_pattern. Empty: none.
std::string layer_index(const PeftTargets& t, const std::string& module) {
  size_t seg_start = 0;
  for (size_t dot = module.find('.'); dot != std::string::npos; seg_start = dot + 1, dot = module.find('.', dot + 1)) {
    const std::string seg = module.substr(seg_start, dot - seg_start);
    if (seg.empty() || seg.find_first_not_of("0123456789") != std::string::npos || seg_start < 2) continue;
    const std::string prefix = module.substr(0, seg_start - 1);
    bool ok = t.layers_patterns.empty() ? prefix.find('.') != std::string::npos : false;
    for (const auto& p : t.layers_patterns) ok = ok || p->full_match(prefix);
    if (!ok) continue;
    const size_t nz = seg.find_first_not_of('0');
    return nz == std::string::npos ? "0" : seg.substr(nz);
  }
  return "";
}

// "<key>.lora_A.weight" or "<key>.lora_A.default.weight" (PEFT's own adapter name): key, A or B.
bool split_lora_name(const std::string& name, std::string& key, bool& is_a) {
  for (const char* tail : {".weight", ".default.weight"}) {
    for (const char* ab : {".lora_A", ".lora_B"}) {
      const std::string suffix = std::string(ab) + tail;
      if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        key = name.substr(0, name.size() - suffix.size());
        if (key.rfind("base_model.model.", 0) == 0) key = key.substr(17);
        is_a = ab[6] == 'A';
        return true;
      }
    }
  }
  return false;
}

std::string shorten(const std::string& s) { return s.size() > 120 ? s.substr(0, 120) + "...(" + std::to_string(s.size()) + " chars)" : s; }

std::string first_names(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < 5; ++i) out += (i ? ", " : "") + shorten(names[i]);
  if (names.size() > 5) out += " and " + std::to_string(names.size() - 5) + " more";
  return out;
}

// Two tensors whose data overlap would be one buffer read as two weights: refused.
void check_no_overlap(const SafetensorsFile& file, const std::string& where) {
  std::vector<const TensorView*> views;
  for (const auto& [name, view] : file.tensors()) {
    if (view.bytes > 0) views.push_back(&view);
  }
  std::sort(views.begin(), views.end(), [](const TensorView* a, const TensorView* b) { return a->data < b->data; });
  for (size_t i = 1; i < views.size(); ++i) {
    if (views[i - 1]->data + views[i - 1]->bytes > views[i]->data) {
      throw InputError(where + ": tensors " + shorten(views[i - 1]->name) + " and " + shorten(views[i]->name) +
                       " share bytes (overlapping data_offsets)");
    }
  }
}

}  // namespace

std::filesystem::path select_adapter_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  if (std::filesystem::exists(dir / "adapter_config.json", ec)) return dir;
  if (!std::filesystem::is_directory(dir, ec)) throw InputError(dir.string() + ": LoRA folder not found");
  // Numbers of any length: the longest digit string (leading zeros aside) is the largest, then the
  // lexicographically largest; an equal number keeps the first name in sorted order.
  std::string best;
  std::filesystem::path chosen;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("checkpoint-", 0) != 0 || name.size() == 11 || !std::filesystem::exists(e.path() / "adapter_config.json", ec)) continue;
    std::string digits = name.substr(11);
    if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
    digits = digits.substr(std::min(digits.find_first_not_of('0'), digits.size() - 1));
    const bool larger = chosen.empty() || digits.size() > best.size() ||
                        (digits.size() == best.size() && (digits > best || (digits == best && e.path() < chosen)));
    if (larger) {
      best = digits;
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
    if (pattern_matches(key, module)) {
      r = value;
      break;
    }
  }
  for (const auto& [key, value] : c.alpha_pattern) {
    if (pattern_matches(key, module)) {
      alpha = value;
      alpha_key = "alpha_pattern." + key;
      break;
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
    read_patterns(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), where);
    read_targets(j, where);
  } catch (const nlohmann::json::exception&) {
    throw InputError(where + ": a setting has the wrong type (peft_type, use_dora, modules_to_save, r, lora_alpha, "
                     "use_rslora, rank_pattern, alpha_pattern, target_modules, exclude_modules, layers_to_transform "
                     "or layers_pattern)");
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
  // The GGUF adapter carries this one alpha: 0 would silence every pair, and the per-module scales
  // folded into B would divide by it.
  if (config_.alpha == 0.0f) throw InputError(where + ": lora_alpha is 0, so the adapter would change nothing");
  config_.use_rslora = j.value("use_rslora", false);
}

void PeftAdapter::read_patterns(std::string_view text, const std::string& where) {
  // nlohmann::json sorts an object's keys; the file's order comes from an order-keeping parse of
  // the same (already checked) text.
  const auto j = nlohmann::ordered_json::parse(text);
  const auto number = [&](const nlohmann::ordered_json& v, const std::string& key, auto type) {
    if (auto n = json_number<decltype(type)>(nlohmann::json(v))) return *n;
    throw InputError(where + ": " + key + " is not a number in range");
  };
  if (j.contains("rank_pattern") && j["rank_pattern"].is_object()) {
    for (const auto& [k, v] : j["rank_pattern"].items()) config_.rank_pattern.emplace_back(k, number(v, "rank_pattern." + k, 0));
  }
  if (j.contains("alpha_pattern") && j["alpha_pattern"].is_object()) {
    for (const auto& [k, v] : j["alpha_pattern"].items()) config_.alpha_pattern.emplace_back(k, number(v, "alpha_pattern." + k, 0.0f));
  }
}

bool PeftTargets::targets(const std::string& module) const {
  if (exclude_regex ? exclude_regex->full_match(module)
                    : std::any_of(exclude_names.begin(), exclude_names.end(),
                                  [&](const std::string& e) { return ends_with_segment(module, e); })) {
    return false;
  }
  if (any) return true;
  if (all_linear) return !is_output_head(module);
  if (regex) return regex->full_match(module);
  if (std::find(names.begin(), names.end(), module) != names.end()) return true;  // PEFT: no layer filter here
  if (!std::any_of(names.begin(), names.end(), [&](const std::string& n) { return ends_with_segment(module, n); })) return false;
  if (!has_layers) return true;
  const std::string index = layer_index(*this, module);
  return !index.empty() && std::find(layers.begin(), layers.end(), index) != layers.end();
}

void PeftAdapter::read_targets(const nlohmann::json& j, const std::string& where) {
  PeftTargets& t = config_.targets;
  const auto strings = [&](const nlohmann::json& v, const std::string& key) {
    std::vector<std::string> out;
    if (!v.is_array()) throw InputError(where + ": " + key + " must be a string, a list of strings or null");
    for (const auto& e : v) out.push_back(e.get<std::string>());
    return out;
  };
  const nlohmann::json none;
  const nlohmann::json& target = j.contains("target_modules") ? j["target_modules"] : none;
  const nlohmann::json& exclude = j.contains("exclude_modules") ? j["exclude_modules"] : none;
  const nlohmann::json& layers = j.contains("layers_to_transform") ? j["layers_to_transform"] : none;
  const nlohmann::json& pattern = j.contains("layers_pattern") ? j["layers_pattern"] : none;
  if (j.contains("target_parameters") && !j["target_parameters"].is_null() && !j["target_parameters"].empty()) {
    throw InputError(where + ": target_parameters (LoRA on raw parameters) is not supported");
  }
  t.description = "target_modules " + target.dump() + (exclude.is_null() ? "" : ", exclude_modules " + exclude.dump()) +
                  (layers.is_null() ? "" : ", layers_to_transform " + layers.dump()) +
                  (pattern.is_null() ? "" : ", layers_pattern " + pattern.dump());
  if (t.description.size() > 300) t.description = t.description.substr(0, 300) + "...";
  t.any = target.is_null();
  if (target.is_string()) {
    std::string lower = target.get<std::string>();
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    t.all_linear = lower == "all-linear";
    if (!t.all_linear) t.regex = std::make_shared<PeftRegex>(target.get<std::string>(), where + ": target_modules");
  } else if (!target.is_null()) {
    t.names = strings(target, "target_modules");
  }
  if (exclude.is_string()) t.exclude_regex = std::make_shared<PeftRegex>(exclude.get<std::string>(), where + ": exclude_modules");
  else if (!exclude.is_null()) t.exclude_names = strings(exclude, "exclude_modules");
  // As PEFT's LoraConfig: the layer filter belongs to a list of target names.
  if (!layers.is_null() && !(layers.is_array() && layers.empty())) {
    if (!t.names.empty() || t.any) t.has_layers = true;
    else throw InputError(where + ": layers_to_transform cannot be used when target_modules is a string");
    for (const auto& e : layers.is_array() ? layers : nlohmann::json::array({layers})) {
      if (!e.is_number_integer()) throw InputError(where + ": layers_to_transform must hold integers");
      t.layers.push_back(e.is_number_unsigned() ? std::to_string(e.get<uint64_t>()) : std::to_string(e.get<int64_t>()));
    }
  }
  if (!pattern.is_null()) {
    for (const std::string& p : pattern.is_string() ? std::vector<std::string>{pattern.get<std::string>()} : strings(pattern, "layers_pattern")) {
      if (!p.empty()) t.layers_patterns.push_back(std::make_shared<PeftRegex>(".*\\.(?:" + p + ")", where + ": layers_pattern"));
    }
  }
  if (t.any && t.has_layers) throw InputError(where + ": layers_to_transform needs target_modules");
}

void PeftAdapter::load_weights() {
  const auto weights = dir_ / "adapter_model.safetensors";
  std::error_code ec;
  if (!std::filesystem::exists(weights, ec)) {
    throw InputError(dir_.string() + ": no adapter_model.safetensors (adapter_model.bin is not supported; save with safe_serialization)");
  }
  file_ = std::make_unique<SafetensorsFile>(weights);
  check_no_overlap(*file_, weights.string());
  std::map<std::string, LoraModule> by_module;  // hub-layout name: one module under two layouts is caught
  std::map<std::string, std::string> a_names, b_names;
  for (const auto& [name, view] : file_->tensors()) {
    const std::string tensor = weights.string() + ": " + shorten(name);
    // Real names are under 200 characters; the bound also keeps matching cheap.
    if (name.size() > 512) throw InputError(tensor + ": tensor name too long for a module of this model");
    if (name.find("lora_magnitude_vector") != std::string::npos) throw InputError(tensor + ": DoRA magnitude vectors cannot be applied");
    if (name.find("modules_to_save") != std::string::npos) throw InputError(tensor + ": modules_to_save weights are not supported");
    if (name.find("lora_embedding_") != std::string::npos) throw InputError(tensor + ": LoRA on embeddings is not supported");
    std::string key;
    bool is_a = false;
    if (!split_lora_name(name, key, is_a)) throw InputError(tensor + ": not a LoRA A/B weight (biases and other tensors are not supported)");
    const std::string module = hub_module_name(key);
    if (view.shape.size() != 2) throw InputError(tensor + ": LoRA weights must be 2-D");
    auto [seen, fresh] = (is_a ? a_names : b_names).emplace(module, name);
    if (!fresh) {
      throw InputError(weights.string() + ": " + shorten(seen->second) + " and " + shorten(name) +
                       " are the same LoRA weight under two names (checkpoint layouts or adapter names)");
    }
    LoraModule& m = by_module[module];
    m.module = module;
    m.peft_name = key;
    (is_a ? m.a : m.b) = &view;
  }
  for (auto& [module, m] : by_module) {
    if (!m.a || !m.b) throw InputError(weights.string() + ": " + module + " lacks its lora_" + (m.a ? "B" : "A") + " weight");
    if (!config_.targets.targets(m.peft_name)) {
      untargeted_.push_back(m.peft_name);
      continue;
    }
    m.scale = peft_scale(config_, m.peft_name, &m.rank);
    if (m.a->shape[0] != m.rank || m.b->shape[1] != m.rank) {
      throw InputError(weights.string() + ": " + module + " has rank " + std::to_string(m.a->shape[0]) +
                       ", the config says " + std::to_string(m.rank));
    }
    modules_.push_back(m);
  }
  if (by_module.empty()) throw InputError(weights.string() + ": holds no LoRA weights");
  if (modules_.empty()) {
    throw InputError(dir_.string() + ": the config (" + config_.targets.description + ") targets none of the " +
                     std::to_string(by_module.size()) + " LoRA pairs in adapter_model.safetensors, e.g. " +
                     first_names(untargeted_));
  }
  // PEFT fills in a model type's default targets for a config without any (or refuses it); a
  // saved adapter always names them, so one without is applied as its file says, with a word.
  if (config_.targets.any) {
    spdlog::warn("adapter {}: its config names no target_modules; all {} LoRA pairs in the file are applied", dir_.string(),
                 modules_.size());
  }
  // PEFT creates LoRA layers only on targeted modules; other pairs in the file are unexpected keys
  // it does not load. Left out the same way, but said.
  if (!untargeted_.empty()) {
    spdlog::warn("adapter {}: {} LoRA pair(s) in the file are not targeted by its config ({}) and are not applied: {}",
                 dir_.string(), untargeted_.size(), config_.targets.description, first_names(untargeted_));
  }
}

}  // namespace drivevqa
