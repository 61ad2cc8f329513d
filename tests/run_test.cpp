// `drivevqa run` end to end on the demo data with the tiny model (a real process).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>

#include "support/test_support.h"

namespace drivevqa {
namespace {

using OrderedJson = nlohmann::ordered_json;

TEST(Run, DemoResultsKeepEveryFieldAndAnswerAllButTheBrokenItems) {
  const auto dir = test::scratch_dir("run-demo");
  const auto out = dir / "results.json";
  const auto r = test::run_process({test::drivevqa_binary(), "run", "--json_file", (test::demo_dir() / "questions.json").string(),
                                    "--image_base_dir", test::demo_dir().string(), "--output_file", out.string(),
                                    "--model_7b", test::tiny_model_dir().string(), "--dtype", "fp16",
                                    "--image_max_tokens", "32", "--max_new_tokens_cap", "4", "-t", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const OrderedJson input = OrderedJson::parse(test::read_text(test::demo_dir() / "questions.json"));
  const OrderedJson output = OrderedJson::parse(test::read_text(out));
  ASSERT_EQ(output.size(), input.size());
  size_t errors = 0;
  for (size_t i = 0; i < input.size(); ++i) {
    SCOPED_TRACE("item " + std::to_string(i));
    const OrderedJson& in = input[i];
    const OrderedJson& got = output[i];
    // Original fields first, in their order, with their values (only `answer` is filled in).
    auto it = got.begin();
    for (const auto& [key, value] : in.items()) {
      ASSERT_NE(it, got.end());
      EXPECT_EQ(it.key(), key);
      if (key != "answer") EXPECT_EQ(it.value(), value);
      ++it;
    }
    for (const char* key : {"subtask", "model_routed", "model_used", "answer"}) EXPECT_TRUE(got.contains(key)) << key;
    const std::string answer = got["answer"];
    const bool is_error = answer.rfind("[drivevqa error] ", 0) == 0;
    errors += is_error ? 1 : 0;
    if (!is_error) {
      EXPECT_FALSE(answer.empty());
      EXPECT_EQ(got["model_used"], "7B");
    }
  }
  // The demo plants two unanswerable items (all images missing; no question).
  EXPECT_EQ(errors, 2u);
  EXPECT_NE(output[17]["answer"].get<std::string>().rfind("[drivevqa error] ", 0), 0u) << "one missing camera still answers";
  EXPECT_NE(r.err.find("missing_file.jpg: not found"), std::string::npos) << "the skipped image is named";
}

TEST(Run, FlagsParseLikeTheSeed) {
  const auto dir = test::scratch_dir("run-flags");
  // --do_sample False, dashed spellings, and a LoRA flag that is switched off all parse.
  const auto ok = test::run_process({test::drivevqa_binary(), "run", "--json-file", (test::demo_dir() / "questions.json").string(),
                                     "--image-base-dir", test::demo_dir().string(), "--output-file", (dir / "o.json").string(),
                                     "--model-7b", test::tiny_model_dir().string(), "--do_sample", "False",
                                     "--use_lora_7b", "False", "--limit", "1", "--image_max_tokens", "16",
                                     "--max_new_tokens_cap", "2", "-t", "2"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  // A LoRA switched on without its folder is a usage error, not silently ignored.
  const auto lora = test::run_process({test::drivevqa_binary(), "run", "--json_file", "x.json", "--output_file", "y.json",
                                       "--model_7b", "m", "--use_lora_7b"});
  EXPECT_EQ(lora.exit_code, 2);
  EXPECT_NE(lora.err.find("--use_lora_7b needs --lora_7b_dir"), std::string::npos) << lora.err;
  const auto unknown = test::run_process({test::drivevqa_binary(), "run", "--json_file", "x", "--output_file", "y", "--bogus"});
  EXPECT_EQ(unknown.exit_code, 2);
}

TEST(Run, EverySeedFlagParsesWithTheSeedsDefaults) {
  const auto show = [](std::vector<std::string> extra) {
    std::vector<std::string> args = {test::drivevqa_binary(), "run", "--json_file", "q.json", "--output_file", "o.json",
                                     "--show_config"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = test::run_process(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out);
  };
  const auto defaults = show({});
  EXPECT_EQ(defaults["image_base_dir"], "");
  EXPECT_EQ(defaults["use_lora_7b"], false);
  EXPECT_EQ(defaults["use_lora_72b"], false);
  EXPECT_EQ(defaults["dtype"], "bf16");
  EXPECT_EQ(defaults["device_map"], "auto");
  EXPECT_EQ(defaults["use_flash_attn"], false);
  EXPECT_EQ(defaults["enable_fallback_72b_to_7b"], true);
  EXPECT_EQ(defaults["max_images_per_prompt"], 6);
  EXPECT_EQ(defaults["max_new_tokens_default"], 512);
  EXPECT_EQ(defaults["do_sample"], false);
  EXPECT_EQ(defaults["seed"], 888);
  EXPECT_EQ(defaults["limit"], 0);
  EXPECT_EQ(defaults["rag_mode"], "hint");
  EXPECT_EQ(defaults["kb_topk"], 4);

  // The seed README's own command line (booleans bare and as `False`).
  const auto seed = show({"--image_base_dir", "/data/nuscenes", "--model_7b", "/w/7b", "--model_72b", "/w/72b",
                          "--use_lora_7b", "--lora_7b_dir", "../l7", "--use_lora_72b", "--lora_72b_dir", "../l72",
                          "--dtype", "bf16", "--device_map", "auto", "--use_flash_attn", "--enable_fallback_72b_to_7b",
                          "--max_images_per_prompt", "6", "--max_new_tokens_default", "512", "--do_sample", "False",
                          "--kb_file", "/mnt/kb.json", "--rag_mode", "hint", "--kb_topk", "4", "--limit", "10",
                          "--seed", "7"});
  EXPECT_EQ(seed["use_lora_7b"], true);
  EXPECT_EQ(seed["lora_72b_dir"], "../l72");
  EXPECT_EQ(seed["use_flash_attn"], true);
  EXPECT_EQ(seed["do_sample"], false);
  EXPECT_EQ(seed["limit"], 10);
  EXPECT_EQ(seed["seed"], 7);
  EXPECT_EQ(seed["kb_file"], "/mnt/kb.json");
  // Dashed spellings and explicit values.
  const auto dashed = show({"--max-images-per-prompt", "3", "--do-sample", "--enable-fallback-72b-to-7b", "False",
                            "--dtype", "fp16", "--rag-mode", "off"});
  EXPECT_EQ(dashed["max_images_per_prompt"], 3);
  EXPECT_EQ(dashed["do_sample"], true);
  EXPECT_EQ(dashed["enable_fallback_72b_to_7b"], false);
  EXPECT_EQ(dashed["dtype"], "fp16");
  EXPECT_EQ(dashed["rag_mode"], "off");
  // Values outside the seed's choices are usage errors.
  EXPECT_EQ(test::run_process({test::drivevqa_binary(), "run", "--json_file", "q", "--output_file", "o", "--dtype", "fp8"}).exit_code, 2);
  EXPECT_EQ(test::run_process({test::drivevqa_binary(), "run", "--json_file", "q", "--output_file", "o", "--do_sample", "maybe"}).exit_code, 2);
}

TEST(Run, QuestionFileThatIsNotAListStopsWithItsPosition) {
  const auto dir = test::scratch_dir("run-bad-file");
  const auto write = [&](const char* name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  };
  const auto run = [&](const std::string& file) {
    return test::run_process({test::drivevqa_binary(), "run", "--json_file", file, "--output_file",
                              (dir / "o.json").string(), "--model_7b", test::tiny_model_dir().string()});
  };
  const auto not_json = run(write("a.json", "[{\"question\": 1,"));
  EXPECT_EQ(not_json.exit_code, 3);
  EXPECT_NE(not_json.err.find("not valid JSON"), std::string::npos) << not_json.err;
  const auto object = run(write("b.json", "{\"question\": \"q\"}"));
  EXPECT_EQ(object.exit_code, 3);
  EXPECT_NE(object.err.find("expected a JSON list"), std::string::npos) << object.err;
  const auto item = run(write("c.json", "[{\"question\": \"q\"}, 42]"));
  const auto to_dir = test::run_process({test::drivevqa_binary(), "run", "--json_file", write("d.json", "[]"),
                                         "--output_file", dir.string(), "--model_7b", test::tiny_model_dir().string()});
  EXPECT_EQ(to_dir.exit_code, 2);
  EXPECT_NE(to_dir.err.find("is a folder"), std::string::npos) << to_dir.err;
  // An item that is not an object costs that item only (the list itself is fine).
  EXPECT_EQ(item.exit_code, 0) << item.err;
  const auto results = nlohmann::json::parse(test::read_text(dir / "o.json"));
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[1]["item"], 42);
  EXPECT_NE(results[1]["answer"].get<std::string>().find("item is a number, expected an object"), std::string::npos);
}

}  // namespace
}  // namespace drivevqa
