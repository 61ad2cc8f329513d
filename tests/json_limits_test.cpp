// JSON from outside: nesting deeper than kMaxJsonDepth is refused by every reader with the file and
// the byte, before anything recurses over it; results files are written one compact item a line.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>

#include "convert/hf_config.h"
#include "convert/safetensors.h"
#include "lora/peft_adapter.h"
#include "results/results_file.h"
#include "support/test_support.h"
#include "util/error.h"
#include "util/text.h"

namespace drivevqa {
namespace {

constexpr size_t kHostileDepth = 100000;

std::string nested_arrays(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// `prefix` (which opens `open` levels), a 100,000-deep value, then the closers of `prefix`.
struct DeepFile {
  std::string text;
  size_t refused_at;  // the byte the refusal must name (counted from 1)
};
DeepFile deep_after(const std::string& prefix, size_t open, const std::string& suffix) {
  return {prefix + nested_arrays(kHostileDepth) + suffix, prefix.size() + (kMaxJsonDepth + 1 - open)};
}

std::string refusal(size_t byte) {
  return "JSON nested deeper than 64 levels at byte " + std::to_string(byte);
}

template <typename F>
std::string input_error_of(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no InputError)";
}

TEST(JsonLimits, DepthIsCountedOutsideStringsOnly) {
  EXPECT_EQ(json_too_deep_at(nested_arrays(64)), 0u);
  EXPECT_EQ(json_too_deep_at(nested_arrays(65)), 65u);
  EXPECT_EQ(json_too_deep_at(" " + nested_arrays(65)), 66u);
  // Closed levels do not add up: 64 deep, twice.
  EXPECT_EQ(json_too_deep_at("[" + nested_arrays(63) + "," + nested_arrays(63) + "]"), 0u);
  std::string objects;
  for (int i = 0; i < 65; ++i) objects += "{\"k\":";
  EXPECT_EQ(json_too_deep_at(objects + "1" + std::string(65, '}')), 64u * 5 + 1);
  // Brackets in strings, after escaped quotes and after an escaped backslash.
  EXPECT_EQ(json_too_deep_at("[\"" + std::string(100, '[') + "\"]"), 0u);
  EXPECT_EQ(json_too_deep_at("[\"\\\"" + std::string(100, '{') + "\"]"), 0u);
  const std::string after_backslash = "[\"\\\\\"," + std::string(64, '[');  // the string ends after "\\"
  EXPECT_EQ(json_too_deep_at(after_backslash), after_backslash.size());
  EXPECT_EQ(json_too_deep_at("[\"\\u0022" + std::string(100, '[') + "\"]"), 0u);
  // Stray closers do not buy depth.
  EXPECT_EQ(json_too_deep_at(std::string(10, ']') + nested_arrays(65)), 75u);
}

TEST(JsonLimits, SixtyFourLevelsParseAndSixtyFiveAreRefusedWithTheirByte) {
  EXPECT_TRUE(parse_json(nested_arrays(64), "x.json").is_array());
  EXPECT_TRUE(parse_ordered_json(nested_arrays(64), "x.json").is_array());
  EXPECT_EQ(input_error_of([] { parse_json(nested_arrays(65), "x.json"); }), "x.json: " + refusal(65));
  EXPECT_EQ(input_error_of([] { parse_ordered_json(nested_arrays(kHostileDepth), "y.json"); }), "y.json: " + refusal(65));
  const std::string in_string = R"([{"q": "[[[[ \"[[[[", "v": )";
  EXPECT_EQ(input_error_of([&] { parse_json(in_string + nested_arrays(kHostileDepth) + "}]", "z.json"); }),
            "z.json: " + refusal(in_string.size() + 63));
  // The journal's and the judge's reader: nothing instead of an exception.
  EXPECT_TRUE(try_parse_json(nested_arrays(64)).has_value());
  EXPECT_FALSE(try_parse_json(nested_arrays(65)).has_value());
  EXPECT_FALSE(try_parse_json(nested_arrays(kHostileDepth)).has_value());
  EXPECT_FALSE(try_parse_json("{\"index\": 3").has_value());
  EXPECT_FALSE(try_parse_json("1e99999").has_value());
  EXPECT_EQ(try_parse_json(R"({"index": 3})")->at("index"), 3);
}

void expect_refused(const test::ProcessResult& r, const std::filesystem::path& file, size_t byte) {
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find(file.string() + ": " + refusal(byte)), std::string::npos) << r.err;
}

TEST(JsonLimits, EveryCommandRefusesHostileDepthInItsInputFiles) {
  const auto dir = test::scratch_dir("json-limits-cli");
  const std::string bin = test::drivevqa_binary();
  const std::string demo = test::demo_dir().string();
  const std::string questions = (test::demo_dir() / "questions.json").string();
  const std::string gt = (test::demo_dir() / "gt.json").string();
  const auto write = [&](const std::string& name, const DeepFile& f) {
    test::write_bytes(dir / name, f.text);
    return dir / name;
  };
  const DeepFile q = deep_after(R"([{"question": "What [[[ is \"[{ ahead?", "extra": )", 2, "}]");
  const auto q_file = write("questions.json", q);
  expect_refused(test::run_process({bin, "route", "--json_file", q_file.string()}), q_file, q.refused_at);
  const std::string out = (dir / "out.json").string();
  const std::string tiny = test::tiny_model_dir().string();
  expect_refused(test::run_process({bin, "run", "--json_file", q_file.string(), "--output_file", out, "--model_7b", tiny}),
                 q_file, q.refused_at);

  const DeepFile prompts = deep_after(R"({"system": )", 1, "}");
  const auto prompts_file = write("prompts.json", prompts);
  expect_refused(test::run_process({bin, "run", "--json_file", questions, "--image_base_dir", demo, "--output_file", out,
                                    "--model_7b", tiny, "--prompts", prompts_file.string()}),
                 prompts_file, prompts.refused_at);

  const DeepFile kb = deep_after(R"({"scene": {"key_frames": )", 2, "}}");
  const auto kb_file = write("kb.json", kb);
  expect_refused(test::run_process({bin, "kb", "--kb_file", kb_file.string(), "--kb_index", (dir / "kb.idx").string()}),
                 kb_file, kb.refused_at);
  expect_refused(test::run_process({bin, "run", "--json_file", questions, "--image_base_dir", demo, "--output_file", out,
                                    "--model_7b", tiny, "--kb_file", kb_file.string()}),
                 kb_file, kb.refused_at);

  const DeepFile answers = deep_after(R"([{"scene_token": "s", "answer": )", 2, "}]");
  const auto answers_file = write("answers.json", answers);
  expect_refused(test::run_process({bin, "eval", "--predictions", answers_file.string(), "--ground_truth", gt}),
                 answers_file, answers.refused_at);
  expect_refused(test::run_process({bin, "eval", "--predictions", gt, "--ground_truth", answers_file.string()}),
                 answers_file, answers.refused_at);
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(JsonLimits, ModelFileReadersRefuseHostileDepth) {
  const auto dir = test::scratch_dir("json-limits-model");
  const DeepFile config = deep_after(R"({"architectures": )", 1, "}");
  test::write_bytes(dir / "config.json", config.text);
  EXPECT_EQ(input_error_of([&] { read_hf_config(dir); }), (dir / "config.json").string() + ": " + refusal(config.refused_at));
  test::write_bytes(dir / "adapter_config.json", config.text);
  EXPECT_EQ(input_error_of([&] { PeftAdapter adapter(dir); }),
            (dir / "adapter_config.json").string() + ": " + refusal(config.refused_at));

  const DeepFile index = deep_after(R"({"weight_map": {"a": )", 2, "}}");
  test::write_bytes(dir / "model.safetensors.index.json", index.text);
  EXPECT_EQ(input_error_of([&] { Checkpoint checkpoint(dir); }),
            (dir / "model.safetensors.index.json").string() + ": " + refusal(index.refused_at));

  // A safetensors file: 8-byte little-endian header length, then the header.
  const DeepFile header = deep_after(R"({"__metadata__": )", 1, "}");
  std::string file(8, '\0');
  for (int i = 0; i < 8; ++i) file[i] = static_cast<char>((static_cast<uint64_t>(header.text.size()) >> (8 * i)) & 0xFF);
  test::write_bytes(dir / "m.safetensors", file + header.text);
  const std::string error = input_error_of([&] { SafetensorsFile st(dir / "m.safetensors"); });
  EXPECT_NE(error.find((dir / "m.safetensors").string()), std::string::npos) << error;
  EXPECT_NE(error.find(refusal(header.refused_at)), std::string::npos) << error;
}

TEST(JsonLimits, ResultsFileIsOneCompactItemPerLine) {
  const auto dir = test::scratch_dir("json-limits-results");
  // A few KB of unknown nested fields per item, 50 levels deep: pretty-printed, every value of it
  // would get a line indented by up to 100 spaces.
  nlohmann::ordered_json extra = {{"values", {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}};
  for (int level = 0; level < 50; ++level) extra = {{"values", {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}, {"next", extra}};
  auto items = nlohmann::ordered_json::parse(test::read_text(test::demo_dir() / "questions.json"));
  items.erase(items.begin() + 6, items.end());
  for (auto& item : items) item["extra"] = extra;
  const std::string input = items.dump();
  ASSERT_GT(input.size(), 6u * 2000);
  test::write_bytes(dir / "q.json", input);
  const auto r = test::run_process({test::drivevqa_binary(), "route", "--json_file", (dir / "q.json").string(),
                                    "--output_file", (dir / "routed.json").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string output = test::read_text(dir / "routed.json");
  EXPECT_LE(output.size(), 3 * input.size()) << output.size() << " bytes from " << input.size();
  EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), static_cast<long>(items.size() + 2));
  const auto routed = nlohmann::ordered_json::parse(output);
  ASSERT_EQ(routed.size(), items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    EXPECT_EQ(routed[i].at("extra"), extra);
    EXPECT_EQ(routed[i].at("question"), items[i].at("question"));
    EXPECT_TRUE(routed[i].contains("subtask"));
  }

  // Invalid UTF-8 from a model is written as U+FFFD; an empty list is "[]".
  write_results(dir / "bad.json", {nlohmann::ordered_json{{"answer", std::string("ok\xFF")}}});
  EXPECT_EQ(test::read_text(dir / "bad.json"), "[\n{\"answer\":\"ok\xEF\xBF\xBD\"}\n]\n");
  write_results(dir / "empty.json", {});
  EXPECT_EQ(test::read_text(dir / "empty.json"), "[]\n");
}

}  // namespace
}  // namespace drivevqa
