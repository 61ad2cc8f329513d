// Hugging Face folder -> GGUF: the converter reproduces make-model's files for the same weights.
#include <gtest/gtest.h>

#include <gguf.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <cstring>
#include <fstream>

#include "convert/content_key.h"
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
  test::copy_tiny_hf_model(dir / "hf");
  convert_hf_model(dir / "hf", dir / "gguf", GGML_TYPE_F32);
  const std::string images = test::images_arg(test::first_frame_images());
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
  test::copy_tiny_hf_model(dir / "hf");
  const auto r = test::run_process({test::drivevqa_binary(), "convert", "--model", (dir / "hf").string(), "--out",
                                    (dir / "q").string(), "--quantize", "q8_0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  gguf_init_params params{true, nullptr};
  gguf_context* g = gguf_init_from_file((dir / "q" / "model.gguf").c_str(), params);
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(gguf_get_val_u32(g, gguf_find_key(g, "general.file_type")), 7u);  // MOSTLY_Q8_0
  gguf_free(g);
  const std::string images = test::images_arg(test::first_frame_images());
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
  test::copy_tiny_hf_model(dir / "hf");
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

// A folder holding a 20 MB weight file (sampled, not read whole) and a config.
std::filesystem::path write_content_folder(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  std::string weights(20u << 20, '\0');
  for (size_t i = 0; i < weights.size(); ++i) weights[i] = static_cast<char>((i * 2654435761u) >> 13);
  const std::string header = R"({"w":{"dtype":"F32","shape":[5242878],"data_offsets":[0,20971512]}})";
  const uint64_t len = header.size();
  std::memcpy(weights.data(), &len, 8);
  std::memcpy(weights.data() + 8, header.data(), header.size());
  test::write_bytes(dir / "model.safetensors", weights);
  test::write_bytes(dir / "config.json", R"({"model_type": "qwen2_5_vl"})");
  return dir;
}

// Rewrites `size` bytes at `offset` and gives the file back its modification time.
void patch_keeping_mtime(const std::filesystem::path& file, size_t offset, const std::string& bytes) {
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  const timespec times[2] = {st.st_atim, st.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, file.c_str(), times, 0), 0);
  struct stat after {};
  ASSERT_EQ(::stat(file.c_str(), &after), 0);
  ASSERT_EQ(after.st_size, st.st_size);
  ASSERT_EQ(after.st_mtim.tv_nsec, st.st_mtim.tv_nsec);
}

TEST(ContentKey, SameSizeSameMtimeSwapGivesANewKey) {
  const auto dir = write_content_folder(test::scratch_dir("content-key-swap") / "hf");
  const std::string before = content_key({dir}, "f16");
  EXPECT_NE(content_key({dir}, "bf16"), before) << "settings are part of the key";
  // Inside the last block and inside the fourth sampled block: seen.
  patch_keeping_mtime(dir / "model.safetensors", (20u << 20) - 100, "swapped!");
  const std::string after_last = content_key({dir}, "f16");
  EXPECT_NE(after_last, before);
  patch_keeping_mtime(dir / "model.safetensors", ((19u << 20) / 7) * 3 + 5000, "swapped!");
  const std::string after_middle = content_key({dir}, "f16");
  EXPECT_NE(after_middle, after_last);
  // A header change (another tensor layout) and a config change are seen.
  patch_keeping_mtime(dir / "model.safetensors", 30, "6");
  const std::string after_header = content_key({dir}, "f16");
  EXPECT_NE(after_header, after_middle);
  patch_keeping_mtime(dir / "config.json", 16, "X");
  const std::string after_config = content_key({dir}, "f16");
  EXPECT_NE(after_config, after_header);
  // The stated residual risk: bytes between the sampled blocks are not read.
  patch_keeping_mtime(dir / "model.safetensors", (1u << 20) + 4096, "unseen");
  EXPECT_EQ(content_key({dir}, "f16"), after_config);
  // A new modification time alone (a copy, a touch) keeps the key.
  std::filesystem::last_write_time(dir / "config.json", std::filesystem::file_time_type::clock::now());
  EXPECT_EQ(content_key({dir}, "f16"), after_config);
}

TEST(ContentKey, FiveSpellingsOfOneFolderGiveOneKey) {
  const auto root = test::scratch_dir("content-key-spellings");
  const auto dir = write_content_folder(root / "hf");
  std::filesystem::create_directory_symlink(dir, root / "link");
  const std::filesystem::path absolute = std::filesystem::absolute(dir);
  const std::vector<std::filesystem::path> spellings = {
      absolute, std::filesystem::relative(absolute, std::filesystem::current_path()), absolute.string() + "/",
      root / "link", root / "." / "link" / ".." / "hf" / "."};
  const std::string key = content_key({spellings[0]}, "f16");
  for (const auto& s : spellings) {
    EXPECT_EQ(content_key({s}, "f16"), key) << s;
    EXPECT_EQ(content_label(s), "hf") << s;
  }
  // A copy elsewhere holds the same content: the same key.
  std::filesystem::create_directories(root / "copy");
  std::filesystem::copy(dir, root / "copy" / "hf", std::filesystem::copy_options::recursive);
  EXPECT_EQ(content_key({root / "copy" / "hf"}, "f16"), key);
}

// Through the real binary: a swapped weight file (same size, same mtime) is converted again, and
// other spellings of the folder reuse the entry.
TEST(ContentKey, AskConvertsAgainAfterASwapAndReusesAcrossSpellings) {
  const auto root = test::scratch_dir("content-key-ask");
  test::copy_tiny_hf_model(root / "hf");
  std::filesystem::create_directory_symlink(root / "hf", root / "link");
  const std::string images = test::images_arg(test::first_frame_images());
  const auto ask = [&](const std::string& model) {
    return test::run_process({test::drivevqa_binary(), "ask", "--model", model, "--cache_dir", (root / "cache").string(),
                              "--outtype", "f32", "--images", images, "-t", "2", "--max_new_tokens", "2",
                              "--image_max_tokens", "16", "What is ahead?"});
  };
  const auto first = ask((root / "hf").string());
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.err.find("making the conversion"), std::string::npos) << first.err;
  for (const std::string& spelling : {(root / "hf").string() + "/", (root / "link").string(),
                                      std::filesystem::relative(root / "hf", std::filesystem::current_path()).string()}) {
    const auto again = ask(spelling);
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_NE(again.err.find("using the cached conversion"), std::string::npos) << spelling << ": " << again.err;
  }
  // One f32 weight in the file's last MB becomes 0.25 (a float boundary, so it stays finite).
  const auto file = root / "hf" / "model.safetensors";
  const std::string bytes = test::read_text(file);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  const size_t data_start = 8 + header_len;
  const size_t at = data_start + (bytes.size() - 4096 - data_start) / 4 * 4;
  const float quarter = 0.25f;
  patch_keeping_mtime(file, at, std::string(reinterpret_cast<const char*>(&quarter), 4));
  const auto swapped = ask((root / "hf").string());
  ASSERT_EQ(swapped.exit_code, 0) << swapped.err;
  EXPECT_NE(swapped.err.find("making the conversion"), std::string::npos) << "the swap was not seen: " << swapped.err;
}

}  // namespace
}  // namespace drivevqa
