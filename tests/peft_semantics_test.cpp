// PEFT semantics of an adapter's config, as PEFT's check_target_module_exists decides them:
// target_modules (list or full-match regex), exclude_modules, layers_to_transform; pairs the
// config does not target are left out (and named), a config that targets nothing is refused;
// files that name one weight twice or share bytes are refused; regexes run in linear time.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <cstring>
#include <fstream>

#include "convert/model_source.h"
#include "lora/lora_convert.h"
#include "lora/peft_adapter.h"
#include "lora/peft_regex.h"
#include "modelgen/lora_writer.h"
#include "modelgen/safetensors_writer.h"
#include "support/test_support.h"
#include "util/error.h"

namespace drivevqa {
namespace {

// A random adapter (text and vision pairs) for the tiny preset, written once.
const std::filesystem::path& base_adapter() {
  static const std::filesystem::path dir = [] {
    const auto d = test::scratch_dir("peft-base");
    test::copy_tiny_hf_model(d / "hf");
    RandomLoraOptions o;
    o.vision = true;
    write_random_lora(d / "hf", d / "adapter", o);
    return d / "adapter";
  }();
  return dir;
}

// A copy of the base adapter whose config has `changes` applied (null values remove the key).
std::filesystem::path adapter_with(const std::string& name, const nlohmann::json& changes) {
  const auto dir = test::scratch_dir("peft-" + name);
  std::filesystem::copy_file(base_adapter() / "adapter_model.safetensors", dir / "adapter_model.safetensors");
  nlohmann::json config = nlohmann::json::parse(test::read_text(base_adapter() / "adapter_config.json"));
  config.merge_patch(changes);
  test::write_bytes(dir / "adapter_config.json", config.dump());
  return dir;
}

// An adapter holding exactly `pairs` (module name as in the file, without the A/B suffix) of the
// given shapes [in, out] at rank 2, with `config` added to a plain LoRA config.
std::filesystem::path adapter_of(const std::string& name, const std::vector<std::pair<std::string, std::pair<int, int>>>& pairs,
                                 const nlohmann::json& config = nlohmann::json::object()) {
  const auto dir = test::scratch_dir("peft-" + name);
  nlohmann::json c = {{"peft_type", "LORA"}, {"r", 2}, {"lora_alpha", 4}};
  c.merge_patch(config);
  test::write_bytes(dir / "adapter_config.json", c.dump());
  std::vector<SafetensorsEntry> entries;
  for (const auto& [module, shape] : pairs) {
    const bool suffixed = module.find(".lora_") != std::string::npos;  // a name given whole
    entries.push_back({suffixed ? module : module + ".lora_A.weight", {2, shape.first}});
    if (!suffixed) entries.push_back({module + ".lora_B.weight", {shape.second, 2}});
  }
  write_safetensors_f32(dir / "adapter_model.safetensors", entries, [](const SafetensorsEntry& e) {
    return std::vector<float>(static_cast<size_t>(e.shape[0] * e.shape[1]), 0.01f);
  });
  return dir;
}

std::vector<std::string> names_of(const PeftAdapter& a) {
  std::vector<std::string> out;
  for (const LoraModule& m : a.modules()) out.push_back(m.peft_name);
  return out;
}

size_t count_ending(const std::vector<std::string>& names, const std::string& tail) {
  size_t n = 0;
  for (const auto& s : names) n += s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  return n;
}

std::string input_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no InputError)";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(PeftSemantics, ListTargetsLeaveOtherPairsOutAndNameThem) {
  const PeftAdapter all(base_adapter());
  const PeftAdapter q(adapter_with("list-q", {{"target_modules", nlohmann::json::array({"q_proj"})}}));
  const auto names = names_of(q);
  ASSERT_FALSE(names.empty());
  EXPECT_EQ(count_ending(names, ".q_proj"), names.size());
  EXPECT_EQ(names.size() + q.untargeted().size(), all.modules().size());
  EXPECT_EQ(count_ending(q.untargeted(), ".v_proj"), count_ending(names, ".q_proj"));
  // The converted adapter holds the q_proj pairs only.
  const LoraFiles files = convert_lora(q, find_model_files(test::tiny_model_dir()), test::scratch_dir("peft-list-q-out"));
  EXPECT_EQ(files.text_pairs, names.size());
  EXPECT_EQ(files.vision_pairs, 0u);
  // A full module name in the list is matched exactly, a partial segment is not.
  const PeftAdapter one(adapter_with("list-full", {{"target_modules", nlohmann::json::array({"model.layers.1.self_attn.k_proj", "_proj"})}}));
  EXPECT_EQ(names_of(one), std::vector<std::string>{"model.layers.1.self_attn.k_proj"});
}

TEST(PeftSemantics, RegexTargetIsAFullMatchOnTheModuleName) {
  const PeftAdapter qv(adapter_with("regex-qv", {{"target_modules", ".*\\.(q|v)_proj"}}));
  const auto names = names_of(qv);
  EXPECT_EQ(count_ending(names, ".q_proj") + count_ending(names, ".v_proj"), names.size());
  EXPECT_GT(count_ending(names, ".v_proj"), 0u);
  // re.fullmatch: the bare name "q_proj" as a string matches no full module name.
  EXPECT_TRUE(contains(input_error([] { PeftAdapter a(adapter_with("regex-bare", {{"target_modules", "q_proj"}})); }),
                       "targets none of the"));
  const PeftAdapter vision(adapter_with("regex-vision", {{"target_modules", R"(visual\.blocks\.\d+\.(attn\.qkv|mlp\.\w+))"}}));
  for (const LoraModule& m : vision.modules()) EXPECT_TRUE(m.vision()) << m.module;
}

TEST(PeftSemantics, ConfigThatTargetsNothingIsRefused) {
  const std::string e = input_error([] { PeftAdapter a(adapter_with("none", {{"target_modules", nlohmann::json::array({"c_attn"})}})); });
  EXPECT_TRUE(contains(e, "targets none of the")) << e;
  EXPECT_TRUE(contains(e, "c_attn")) << e;
  EXPECT_TRUE(contains(e, "model.layers.0.")) << e;  // names pairs the file holds
  EXPECT_TRUE(contains(input_error([] { PeftAdapter a(adapter_with("bad-regex", {{"target_modules", "(?=q).*"}})); }),
                       "look-around"));
}

TEST(PeftSemantics, ZeroAlphaIsRefused) {
  // The GGUF adapter's one alpha would silence every pair and divide the folded per-module scales.
  const std::string e = input_error([] { PeftAdapter a(adapter_with("zero-alpha", {{"lora_alpha", 0}})); });
  EXPECT_TRUE(contains(e, "lora_alpha is 0")) << e;
}

TEST(PeftSemantics, ExcludeModulesAndAllLinear) {
  const PeftAdapter no_k(adapter_with("exclude-list", {{"exclude_modules", nlohmann::json::array({"k_proj"})}}));
  EXPECT_EQ(count_ending(names_of(no_k), ".k_proj"), 0u);
  EXPECT_GT(count_ending(names_of(no_k), ".q_proj"), 0u);
  const PeftAdapter no_mlp(adapter_with("exclude-regex", {{"exclude_modules", ".*\\.mlp\\..*"}}));
  for (const auto& n : names_of(no_mlp)) EXPECT_FALSE(contains(n, ".mlp.")) << n;
  EXPECT_TRUE(contains(input_error([] { PeftAdapter a(adapter_with("exclude-all", {{"exclude_modules", ".*"}})); }),
                       "targets none of the"));
  const PeftAdapter linear(adapter_with("all-linear", {{"target_modules", "ALL-LINEAR"}}));
  EXPECT_EQ(linear.modules().size(), PeftAdapter(base_adapter()).modules().size());
  EXPECT_TRUE(linear.untargeted().empty());
  // all-linear leaves the output head out.
  const PeftAdapter head(adapter_of("lm-head", {{"base_model.model.lm_head", {128, 8}}, {"base_model.model.model.layers.0.self_attn.q_proj", {128, 128}}},
                                    {{"target_modules", "all-linear"}}));
  EXPECT_EQ(names_of(head), std::vector<std::string>{"model.layers.0.self_attn.q_proj"});
}

TEST(PeftSemantics, LayersToTransformKeepsThoseLayerIndices) {
  const PeftAdapter one(adapter_with("layers", {{"layers_to_transform", nlohmann::json::array({1})}}));
  for (const LoraModule& m : one.modules()) EXPECT_TRUE(contains(m.peft_name, ".1.")) << m.peft_name;
  EXPECT_GT(one.modules().size(), 0u);
  // With layers_pattern the index must follow that segment: the vision blocks have none.
  const PeftAdapter text(adapter_with("layers-pattern", {{"layers_to_transform", 1}, {"layers_pattern", "layers"}}));
  for (const LoraModule& m : text.modules()) {
    EXPECT_TRUE(m.peft_name.rfind("model.layers.1.", 0) == 0) << m.peft_name;
  }
  EXPECT_EQ(text.modules().size(), 7u);
  EXPECT_TRUE(contains(input_error([] {
                         PeftAdapter a(adapter_with("layers-regex", {{"target_modules", ".*"}, {"layers_to_transform", nlohmann::json::array({0})}}));
                       }),
                       "layers_to_transform"));
}

TEST(PeftSemantics, OneWeightUnderTwoNamesIsRefused) {
  const std::pair<int, int> shape{128, 128};
  std::string e = input_error([&] {
    PeftAdapter a(adapter_of("two-layouts", {{"base_model.model.model.layers.0.self_attn.q_proj", shape},
                                             {"base_model.model.model.language_model.layers.0.self_attn.q_proj", shape}}));
  });
  EXPECT_TRUE(contains(e, "model.language_model.layers.0.self_attn.q_proj.lora_A")) << e;
  EXPECT_TRUE(contains(e, "two names")) << e;
  e = input_error([&] {
    PeftAdapter a(adapter_of("default-name", {{"base_model.model.model.layers.0.self_attn.q_proj", shape},
                                              {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight", shape}}));
  });
  EXPECT_TRUE(contains(e, "q_proj.lora_A.default.weight")) << e;
  // The newer layout alone is fine.
  const PeftAdapter nested(adapter_of("nested", {{"base_model.model.model.language_model.layers.0.self_attn.q_proj", shape}},
                                      {{"target_modules", nlohmann::json::array({"q_proj"})}}));
  EXPECT_EQ(nested.modules().at(0).module, "model.layers.0.self_attn.q_proj");
}

TEST(PeftSemantics, OverlappingDataIsRefused) {
  const auto dir = test::scratch_dir("peft-overlap");
  test::write_bytes(dir / "adapter_config.json", R"({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]})");
  const std::string header =
      R"({"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},)"
      R"( "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [8, 24]}})";
  std::string file(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(file.data(), &n, 8);
  file += header + std::string(24, '\0');
  test::write_bytes(dir / "adapter_model.safetensors", file);
  const std::string e = input_error([&] { PeftAdapter a(dir); });
  EXPECT_TRUE(contains(e, "q_proj.lora_A.weight") && contains(e, "q_proj.lora_B.weight")) << e;
}

TEST(PeftSemantics, TensorsTheModelCannotPlaceAreRefused) {
  const ModelFiles tiny = find_model_files(test::tiny_model_dir());
  const PeftAdapter extra(adapter_of("extra-layer", {{"base_model.model.model.layers.0.self_attn.q_proj", {128, 128}},
                                                     {"base_model.model.model.layers.7.self_attn.q_proj", {128, 128}}},
                                     {{"target_modules", nlohmann::json::array({"q_proj"})}}));
  std::string e = input_error([&] { convert_lora(extra, tiny, test::scratch_dir("peft-extra-out")); });
  EXPECT_TRUE(contains(e, "model.layers.7.self_attn.q_proj")) << e;
  const PeftAdapter unknown(adapter_of("unknown", {{"base_model.model.model.layers.0.self_attn.rotary", {128, 128}}},
                                       {{"target_modules", ".*"}}));
  e = input_error([&] { convert_lora(unknown, tiny, test::scratch_dir("peft-unknown-out")); });
  EXPECT_TRUE(contains(e, "self_attn.rotary")) << e;
  // A 30,000-character name is refused at once, never matched.
  e = input_error([] { PeftAdapter a(adapter_of("long-name", {{"base_model.model." + std::string(30000, 'a') + ".q_proj", {8, 8}}})); });
  EXPECT_TRUE(contains(e, "too long")) << e.substr(0, 300);
}

// Two alpha_pattern keys match layer 0's q_proj: as PEFT's get_pattern_key, the first in the
// file wins (not the last, nor the first in sorted order).
TEST(PeftSemantics, PatternKeysAreTriedInTheFilesOrder) {
  for (const bool specific_first : {true, false}) {
    const auto dir = adapter_of(specific_first ? "pattern-order-a" : "pattern-order-b",
                                {{"base_model.model.model.layers.0.self_attn.q_proj", {128, 128}}});
    const std::string patterns = specific_first ? R"("layers.0.self_attn.q_proj": 8, "q_proj": 16)"
                                                : R"("q_proj": 16, "layers.0.self_attn.q_proj": 8)";
    test::write_bytes(dir / "adapter_config.json", R"({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"],
                        "rank_pattern": {"q_proj": 2, "layers.0.self_attn.q_proj": 2}, "alpha_pattern": {)" + patterns + "}}");
    const PeftAdapter adapter(dir);
    ASSERT_EQ(adapter.modules().size(), 1u);
    EXPECT_FLOAT_EQ(adapter.modules()[0].scale, (specific_first ? 8.0f : 16.0f) / 2.0f) << patterns;
  }
}

TEST(PeftSemantics, CheckpointNumbersOfAnyLength) {
  const auto dir = test::scratch_dir("peft-checkpoints");
  for (const char* n : {"checkpoint-100", "checkpoint-9223372036854775807", "checkpoint-99999999999999999999",
                        "checkpoint-00000099999999999999999998", "checkpoint-x1"}) {
    std::filesystem::create_directories(dir / n);
    test::write_bytes(dir / n / "adapter_config.json", "{}");
  }
  EXPECT_EQ(select_adapter_dir(dir).filename(), "checkpoint-99999999999999999999");
  std::filesystem::create_directories(dir / "checkpoint-100000000000000000000");
  test::write_bytes(dir / "checkpoint-100000000000000000000" / "adapter_config.json", "{}");
  EXPECT_EQ(select_adapter_dir(dir).filename(), "checkpoint-100000000000000000000");
}

TEST(PeftSemantics, RegexMatchesAsPythonFullmatch) {
  const auto m = [](const char* p, const std::string& s) { return PeftRegex(p, "test").full_match(s); };
  EXPECT_TRUE(m(R"(.*\.(q|v)_proj)", "model.layers.0.self_attn.v_proj"));
  EXPECT_FALSE(m(R"(.*\.(q|v)_proj)", "model.layers.0.self_attn.k_proj"));
  EXPECT_FALSE(m("q_proj", "model.layers.0.self_attn.q_proj"));
  EXPECT_TRUE(m(R"(model\.layers\.\d{1,2}\.self_attn\.[qkv]_proj)", "model.layers.12.self_attn.k_proj"));
  EXPECT_FALSE(m(R"(model\.layers\.\d{1,2}\.self_attn\.[qkv]_proj)", "model.layers.123.self_attn.k_proj"));
  EXPECT_TRUE(m(R"(^.*?(?:mlp|attn)\.[^.]+$)", "visual.blocks.3.attn.qkv"));
  EXPECT_TRUE(m(R"((?P<x>a|b)+c{2,}d?)", "abbaccc"));
  EXPECT_TRUE(m("a{,2}x{", "aax{"));  // a lone '{' is a literal
  EXPECT_FALSE(m("[^a-c]+", "xbz"));
  for (const char* bad : {"(a)\\1", "(?i)q_proj", "a*+", "a**", "(ab", "ab)", "[ab", "*a", "\\b"}) {
    EXPECT_THROW(PeftRegex(bad, "test"), InputError) << bad;
  }
}

TEST(PeftSemantics, CatastrophicRegexesFinishFast) {
  const auto start = std::chrono::steady_clock::now();
  const std::string as(20000, 'a');
  EXPECT_FALSE(PeftRegex("(a*)*b", "test").full_match(as));
  EXPECT_FALSE(PeftRegex("(a|aa)+$b", "test").full_match(as));
  EXPECT_FALSE(PeftRegex("(x+x+)+y", "test").full_match(std::string(20000, 'x')));
  EXPECT_THROW(PeftRegex("((a{1000}){1000}){1000}", "test"), InputError);
  EXPECT_THROW(PeftRegex(std::string(3000, '('), "test"), InputError);
  const PeftAdapter a(adapter_with("catastrophic", {{"target_modules", "(.*a*)*(a*)*.*(_proj|qkv)"}}));
  EXPECT_EQ(a.untargeted().size(), 0u);
  // Backtracking would take longer than the universe on these; linear time is well under a second
  // here (3.4 s under the sanitizers), so the bound only tells the two apart.
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 60.0);
}

}  // namespace
}  // namespace drivevqa
