// Hugging Face folder -> GGUF: the converter reproduces make-model's files for the same weights.
#include <gtest/gtest.h>

#include <gguf.h>

#include <fstream>

#include "convert/hf_to_gguf.h"
#include "convert/safetensors.h"
#include "modelgen/hf_model_writer.h"
#include "modelgen/random_model.h"
#include "support/test_support.h"
#include "util/error.h"
#include "util/files.h"

namespace drivevqa {
namespace {

void expect_same_file(const std::filesystem::path& a, const std::filesystem::path& b) {
  const auto x = read_file_bytes(a), y = read_file_bytes(b);
  ASSERT_EQ(x.size(), y.size()) << a << " vs " << b;
  EXPECT_TRUE(x == y) << a << " differs from " << b;
}

TEST(Convert, TinyHfFolderGivesMakeModelsFilesInEveryOutType) {
  const auto dir = test::scratch_dir("convert");
  write_random_hf_model(dir / "hf", {"tiny", 5, GGML_TYPE_F32});
  for (const auto& [name, type] : std::vector<std::pair<std::string, ggml_type>>{
           {"f32", GGML_TYPE_F32}, {"f16", GGML_TYPE_F16}, {"bf16", GGML_TYPE_BF16}}) {
    SCOPED_TRACE(name);
    write_random_model(dir / ("direct-" + name), {"tiny", 5, type});
    convert_hf_model(dir / "hf", dir / ("converted-" + name), type);
    // Byte-identical files: same keys and values, same tensor names, shapes, types and data.
    expect_same_file(dir / ("converted-" + name) / "model.gguf", dir / ("direct-" + name) / "model.gguf");
    expect_same_file(dir / ("converted-" + name) / "mmproj.gguf", dir / ("direct-" + name) / "mmproj.gguf");
  }
}

TEST(Convert, NewTransformersLayoutConvertsTheSame) {
  const auto dir = test::scratch_dir("convert-new-layout");
  write_random_hf_model(dir / "hf", {"tiny", 6, GGML_TYPE_F32}, /*new_layout=*/true);
  const Checkpoint checkpoint(dir / "hf");
  EXPECT_NE(checkpoint.find("model.visual.blocks.0.attn.qkv.weight"), nullptr);
  EXPECT_NE(checkpoint.find("model.language_model.layers.0.mlp.up_proj.weight"), nullptr);
  write_random_model(dir / "direct", {"tiny", 6, GGML_TYPE_BF16});
  convert_hf_model(dir / "hf", dir / "converted", GGML_TYPE_BF16);
  expect_same_file(dir / "converted" / "model.gguf", dir / "direct" / "model.gguf");
  expect_same_file(dir / "converted" / "mmproj.gguf", dir / "direct" / "mmproj.gguf");
}

TEST(Convert, ConvertedModelAnswersLikeTheDirectOne) {
  const auto dir = test::scratch_dir("convert-answer");
  write_random_hf_model(dir / "hf", {"tiny", 1, GGML_TYPE_F32});
  convert_hf_model(dir / "hf", dir / "gguf", GGML_TYPE_F32);
  std::string images;
  for (const auto& p : test::first_frame_images()) images += (images.empty() ? "" : ",") + p.string();
  const auto ask = [&](const std::filesystem::path& model) {
    return test::run_process({test::drivevqa_binary(), "ask", "--model", model.string(), "--images", images, "-t", "2",
                              "--max_new_tokens", "12", "--image_max_tokens", "32", "What is ahead?"});
  };
  const auto converted = ask(dir / "gguf"), direct = ask(test::tiny_model_dir());
  ASSERT_EQ(converted.exit_code, 0) << converted.err;
  EXPECT_FALSE(converted.out.empty());
  EXPECT_EQ(converted.out, direct.out);
}

TEST(Convert, QuantizedConversionLoadsAndAnswers) {
  const auto dir = test::scratch_dir("convert-quantize");
  write_random_hf_model(dir / "hf", {"tiny", 1, GGML_TYPE_F32});
  const auto r = test::run_process({test::drivevqa_binary(), "convert", "--model", (dir / "hf").string(), "--out",
                                    (dir / "q").string(), "--quantize", "q8_0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  gguf_init_params params{true, nullptr};
  gguf_context* g = gguf_init_from_file((dir / "q" / "model.gguf").c_str(), params);
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(gguf_get_val_u32(g, gguf_find_key(g, "general.file_type")), 7u);  // MOSTLY_Q8_0
  gguf_free(g);
  std::string images;
  for (const auto& p : test::first_frame_images()) images += (images.empty() ? "" : ",") + p.string();
  const auto ask = test::run_process({test::drivevqa_binary(), "ask", "--model", (dir / "q").string(), "--images", images,
                                      "-t", "2", "--max_new_tokens", "4", "--image_max_tokens", "16", "What is ahead?"});
  EXPECT_EQ(ask.exit_code, 0) << ask.err;
  EXPECT_FALSE(ask.out.empty());
  const auto bad = test::run_process({test::drivevqa_binary(), "convert", "--model", (dir / "hf").string(), "--out",
                                      (dir / "x").string(), "--quantize", "q3_nope"});
  EXPECT_EQ(bad.exit_code, 2);
}

TEST(Convert, CheckpointThatDoesNotMatchItsConfigIsRefused) {
  const auto dir = test::scratch_dir("convert-mismatch");
  write_random_hf_model(dir / "hf", {"tiny", 1, GGML_TYPE_F32});
  // Claim a wider model than the weights hold.
  std::string config = test::read_text(dir / "hf" / "config.json");
  config.replace(config.find("\"intermediate_size\": 384"), 24, "\"intermediate_size\": 512");
  std::ofstream(dir / "hf" / "config.json") << config;
  try {
    convert_hf_model(dir / "hf", dir / "out", GGML_TYPE_F32);
    FAIL() << "converted a mismatching checkpoint";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("mlp.gate_proj.weight has shape 384x128, the config implies 512x128"),
              std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "out" / "model.gguf"));
}

TEST(Safetensors, HeadersThatLieAreRefused) {
  const auto check = [](const std::string& header, size_t file_size, const std::string& expected) {
    try {
      parse_safetensors_header(header, 8 + header.size(), file_size, nullptr, "x.safetensors", nullptr);
      ADD_FAILURE() << "accepted: " << header;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  };
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
  EXPECT_EQ(parse_safetensors_header(ok, 8 + ok.size(), 8 + ok.size() + 16, nullptr, "x", nullptr).size(), 1u);
  check(ok, 8 + ok.size() + 8, "lie outside");
  check(R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}})", 1000, "do not match its shape");
  check(R"({"a":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})", 1000, "dtype I64 is not supported");
  check(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[16,8]}})", 1000, "lie outside");
  check(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 1000, "bad shape");
  check(R"({"a":{"dtype":"F32"}})", 1000, "needs dtype, shape and two data_offsets");
  check(R"([1,2])", 1000, "not a JSON object");
  check("{", 1000, "not valid JSON");
}

}  // namespace
}  // namespace drivevqa
