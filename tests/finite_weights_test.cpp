// Non-finite and out-of-range weights: refused by name while converting (base weights and LoRA
// matrices), never cached; the scan itself on every dtype.
#include <gtest/gtest.h>

#include <gguf.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "convert/finite_check.h"
#include "convert/hf_to_gguf.h"
#include "modelgen/lora_writer.h"
#include "support/test_support.h"
#include "util/error.h"

namespace drivevqa {
namespace {


std::vector<std::string> outtype_ask_args(const std::filesystem::path& model, const std::filesystem::path& cache,
                                  const std::string& outtype, const std::filesystem::path& lora = {}) {
  std::vector<std::string> args = {test::drivevqa_binary(), "ask", "--model", model.string(), "--cache_dir",
                                   cache.string(), "--outtype", outtype, "--images", test::images_arg(test::first_frame_images()), "-t", "2",
                                   "--max_new_tokens", "2", "--image_max_tokens", "16", "What is ahead?"};
  if (!lora.empty()) args.insert(args.begin() + 2, {"--lora", lora.string()});
  return args;
}

// Cache entries that a later run could take as finished (anything but lock or temporary leftovers).
std::vector<std::string> finished_entries(const std::filesystem::path& cache) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(cache, ec)) {
    const std::string n = e.path().filename().string();
    if (e.is_directory() && n.find(".partial") == std::string::npos && n.find(".tmp") == std::string::npos &&
        n[0] != '.') {
      names.push_back(n);
    }
  }
  return names;
}

void expect_has(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << "'" << part << "' not in: " << text;
}

TEST(FiniteCheck, ScansEveryDtypeAndFindsTheFirstBadValue) {
  for (const size_t n : {size_t{1}, size_t{7}, size_t{2048}, size_t{2049}, size_t{10000}}) {
    SCOPED_TRACE(n);
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = std::sin(static_cast<float>(i)) * 3.0f;
    v[n / 2] = -5.5f;
    ValueScan s = scan_f32(v.data(), n);
    EXPECT_TRUE(s.finite());
    EXPECT_EQ(s.max_abs, 5.5f);
    v[n - 1] = std::numeric_limits<float>::quiet_NaN();
    EXPECT_EQ(scan_f32(v.data(), n).first_non_finite, n - 1);
    v[n / 3] = -std::numeric_limits<float>::infinity();
    EXPECT_EQ(scan_f32(v.data(), n).first_non_finite, n / 3);
    // The same values as f16 and bf16 bit patterns.
    std::vector<uint16_t> h(n), b(n);
    for (size_t i = 0; i < n; ++i) {
      h[i] = ggml_fp32_to_fp16(v[i]);
      uint32_t bits;
      std::memcpy(&bits, &v[i], 4);
      b[i] = static_cast<uint16_t>(bits >> 16);
    }
    EXPECT_EQ(scan_f16(h.data(), n).first_non_finite, n / 3);
    EXPECT_EQ(scan_bf16(b.data(), n).first_non_finite, n / 3);
  }
  const std::vector<float> big = {1.0f, -70000.0f, 2.0f};
  EXPECT_NO_THROW(check_weight_values(big.data(), big.size(), GGML_TYPE_BF16, "w"));
  EXPECT_NO_THROW(check_weight_values(big.data(), big.size(), GGML_TYPE_Q8_0, "w"));
  try {
    check_weight_values(big.data(), big.size(), GGML_TYPE_F16, "t.weight");
    FAIL() << "an fp16 overflow passed";
  } catch (const InputError& e) {
    expect_has(e.what(), "t.weight: holds 70000");
    expect_has(e.what(), "bf16");
  }
}

// Cost of the scan: printed for the record (one pass over memory, a small fraction of conversion).
TEST(FiniteCheck, ScanCostIsAFractionOfAMemoryPass) {
  std::vector<float> v(16u << 20, 0.25f);  // 64 MB
  const auto start = std::chrono::steady_clock::now();
  size_t bad = 0;
  for (int k = 0; k < 4; ++k) bad += scan_f32(v.data(), v.size()).finite() ? 0 : 1;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / 4;
  std::printf("scan_f32: %.2f ms per 64 MB (%.1f GB/s)\n", s * 1e3, 0.0671 / s);
  EXPECT_EQ(bad, 0u);
}

class FiniteWeights : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir("finite-weights");
    test::copy_tiny_hf_model(dir_ / "hf");
  }
  test::ProcessResult convert(const std::string& outtype) {
    return test::run_process({test::drivevqa_binary(), "convert", "--model", (dir_ / "hf").string(), "--out",
                              (dir_ / ("out-" + outtype)).string(), "--outtype", outtype});
  }
  std::filesystem::path dir_;
};

TEST_F(FiniteWeights, NanInABaseWeightIsRefusedByName) {
  test::patch_safetensors_f32(dir_ / "hf" / "model.safetensors", "model.layers.0.mlp.up_proj.weight", 77, std::nanf(""));
  const auto r = convert("f32");
  EXPECT_EQ(r.exit_code, 4) << r.err;
  expect_has(r.err, "model.layers.0.mlp.up_proj.weight: element 77 of");
  expect_has(r.err, "is NaN");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "out-f32" / "model.gguf"));
  // Through ask on the folder: refused, and nothing is cached for a later run to use.
  const auto ask = test::run_process(outtype_ask_args(dir_ / "hf", dir_ / "cache", "bf16"));
  EXPECT_EQ(ask.exit_code, 4) << ask.err;
  expect_has(ask.err, "model.layers.0.mlp.up_proj.weight: element 77 of");
  EXPECT_TRUE(finished_entries(dir_ / "cache").empty());
}

TEST_F(FiniteWeights, InfInAVisionWeightIsRefusedByName) {
  test::patch_safetensors_f32(dir_ / "hf" / "model.safetensors", "visual.blocks.0.attn.qkv.weight", 3, -INFINITY);
  const auto ask = test::run_process(outtype_ask_args(dir_ / "hf", dir_ / "cache", "f32"));
  EXPECT_EQ(ask.exit_code, 4) << ask.err;
  expect_has(ask.err, "visual.blocks.0.attn.qkv.weight: element 3 of");
  expect_has(ask.err, "-Inf");
  EXPECT_TRUE(finished_entries(dir_ / "cache").empty());
}

TEST_F(FiniteWeights, Fp16OverflowIsRefusedAndBf16Suggested) {
  test::patch_safetensors_f32(dir_ / "hf" / "model.safetensors", "model.layers.1.self_attn.o_proj.weight", 0, 70000.0f);
  const auto f16 = convert("f16");
  EXPECT_EQ(f16.exit_code, 4) << f16.err;
  expect_has(f16.err, "model.layers.1.self_attn.o_proj.weight: holds 70000");
  expect_has(f16.err, "convert --outtype bf16");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "out-f16" / "model.gguf"));
  const auto ask = test::run_process(outtype_ask_args(dir_ / "hf", dir_ / "cache", "f16"));
  EXPECT_EQ(ask.exit_code, 4) << ask.err;
  expect_has(ask.err, "o_proj.weight: holds 70000");
  EXPECT_TRUE(finished_entries(dir_ / "cache").empty());
  // bf16 keeps f32's range: the same folder converts.
  const auto bf16 = convert("bf16");
  EXPECT_EQ(bf16.exit_code, 0) << bf16.err;
}

TEST_F(FiniteWeights, NanInALoraMatrixIsRefusedByName) {
  write_random_lora(dir_ / "hf", dir_ / "adapter", {});
  const std::string b = "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight";
  test::patch_safetensors_f32(dir_ / "adapter" / "adapter_model.safetensors", b, 2, std::nanf(""));
  const auto ask = test::run_process(outtype_ask_args(dir_ / "hf", dir_ / "cache", "f32", dir_ / "adapter"));
  EXPECT_EQ(ask.exit_code, 4) << ask.err;
  expect_has(ask.err, b + ": element 2 of");
  expect_has(ask.err, "is NaN");
  for (const std::string& e : finished_entries(dir_ / "cache")) EXPECT_EQ(e.rfind("lora-", 0), std::string::npos) << e;
}

TEST_F(FiniteWeights, AbsurdLoraAlphaIsRefusedNamingTheKey) {
  RandomLoraOptions o;
  o.alpha = 3e38f;
  write_random_lora(dir_ / "hf", dir_ / "adapter", o);
  const auto ask = test::run_process(outtype_ask_args(dir_ / "hf", dir_ / "cache", "f32", dir_ / "adapter"));
  EXPECT_EQ(ask.exit_code, 4) << ask.err;
  expect_has(ask.err, "lora_alpha 3e+38 with r 4");
  for (const std::string& e : finished_entries(dir_ / "cache")) EXPECT_EQ(e.rfind("lora-", 0), std::string::npos) << e;
}

// Writes `value` over element `index` of a tensor of a GGUF file (F32 data), in place.
void patch_gguf_f32(const std::filesystem::path& file, const std::string& tensor, size_t index, float value) {
  gguf_init_params params{true, nullptr};
  gguf_context* g = gguf_init_from_file(file.c_str(), params);
  ASSERT_NE(g, nullptr);
  const int64_t id = gguf_find_tensor(g, tensor.c_str());
  ASSERT_GE(id, 0) << tensor;
  ASSERT_EQ(gguf_get_tensor_type(g, id), GGML_TYPE_F32);
  const size_t at = gguf_get_data_offset(g) + gguf_get_tensor_offset(g, id) + index * 4;
  gguf_free(g);
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(at));
  f.write(reinterpret_cast<const char*>(&value), 4);
  ASSERT_TRUE(f.good());
}

// A GGUF folder handed in directly is not converted: a sample of each float tensor is looked at.
TEST_F(FiniteWeights, NanInASampleOfAGgufHandedInIsRefusedByName) {
  std::filesystem::copy(test::tiny_model_dir(), dir_ / "gguf");
  patch_gguf_f32(dir_ / "gguf" / "model.gguf", "output_norm.weight", 5, std::nanf(""));
  const auto ask = test::run_process(outtype_ask_args(dir_ / "gguf", dir_ / "cache", "f32"));
  EXPECT_EQ(ask.exit_code, 4) << ask.err;
  expect_has(ask.err, "tensor output_norm.weight: element 5 of");
  std::filesystem::copy_file(test::tiny_model_dir() / "model.gguf", dir_ / "gguf" / "model.gguf",
                             std::filesystem::copy_options::overwrite_existing);
  patch_gguf_f32(dir_ / "gguf" / "mmproj.gguf", "v.blk.0.attn_q.weight", 0, INFINITY);
  const auto vision = test::run_process(outtype_ask_args(dir_ / "gguf", dir_ / "cache", "f32"));
  EXPECT_EQ(vision.exit_code, 4) << vision.err;
  expect_has(vision.err, "tensor v.blk.0.attn_q.weight: element 0 of");
  expect_has(vision.err, "+Inf");
}

}  // namespace
}  // namespace drivevqa
