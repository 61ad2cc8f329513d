// The GGUF checks run before the engine (engine/gguf_check.h) and the Hugging Face config checks of
// `convert`: each broken property is refused with a ModelError naming the key or tensor, and the
// real `drivevqa ask` on such a model exits with code 4 and one line instead of aborting.
#include <gguf.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <functional>

#include "convert/hf_config.h"
#include "convert/model_source.h"
#include "engine/gguf_check.h"
#include "engine/model.h"
#include "lora/lora_convert.h"
#include "qwen25vl/gguf_stream_writer.h"
#include "modelgen/lora_writer.h"
#include "qwen25vl/qwen_gguf_keys.h"
#include "modelgen/random_model.h"
#include "support/test_support.h"
#include "util/error.h"
#include "util/files.h"

namespace drivevqa {
namespace {

using Ne = std::vector<int64_t>;

// A GGUF's keys and tensor infos, edited and written back without tensor data: the checks never
// read data, and the engine is never reached when they refuse.
class GgufEdit {
 public:
  GgufEdit() : kv_(gguf_init_empty()) {}
  explicit GgufEdit(const std::filesystem::path& from) : GgufEdit() {
    gguf_init_params params{true, nullptr};
    gguf_context* src = gguf_init_from_file(from.c_str(), params);
    if (!src) throw std::runtime_error("cannot read " + from.string());
    gguf_set_kv(kv_, src);
    for (int64_t i = 0; i < gguf_get_n_tensors(src); ++i) {
      const int64_t* ne = gguf_get_tensor_ne(src, i);
      tensors_.push_back({gguf_get_tensor_name(src, i), gguf_get_tensor_type(src, i), Ne(ne, ne + 4)});
    }
    gguf_free(src);
  }
  ~GgufEdit() { gguf_free(kv_); }
  GgufEdit(const GgufEdit&) = delete;
  GgufEdit& operator=(const GgufEdit&) = delete;

  gguf_context* kv() { return kv_; }
  void add(const std::string& name, Ne ne, ggml_type type = GGML_TYPE_F32) { tensors_.push_back({name, type, std::move(ne)}); }
  void remove(const std::string& name) { tensors_.erase(find(name)); }
  void reshape(const std::string& name, Ne ne) { find(name)->ne = std::move(ne); }
  void retype(const std::string& name, ggml_type type) { find(name)->type = type; }

  void write(const std::filesystem::path& path) const {
    ggml_init_params params{(tensors_.size() + 1) * ggml_tensor_overhead(), nullptr, true};
    ggml_context* meta = ggml_init(params);
    gguf_context* out = gguf_init_empty();
    gguf_set_kv(out, kv_);
    for (const Tensor& t : tensors_) {
      ggml_tensor* x = ggml_new_tensor(meta, t.type, static_cast<int>(t.ne.size()), t.ne.data());
      ggml_set_name(x, t.name.c_str());
      gguf_add_tensor(out, x);
    }
    const bool ok = gguf_write_to_file(out, path.c_str(), /*only_meta=*/true);
    gguf_free(out);
    ggml_free(meta);
    if (!ok) throw std::runtime_error("cannot write " + path.string());
  }

 private:
  struct Tensor {
    std::string name;
    ggml_type type;
    Ne ne;
  };
  std::vector<Tensor>::iterator find(const std::string& name) {
    const auto it = std::find_if(tensors_.begin(), tensors_.end(), [&](const Tensor& t) { return t.name == name; });
    if (it == tensors_.end()) throw std::runtime_error("no tensor " + name);
    return it;
  }
  gguf_context* kv_;
  std::vector<Tensor> tensors_;
};

struct Breakage {
  const char* what;
  std::function<void(GgufEdit&)> edit;
  const char* message;  // part of the error the check must give
};

std::filesystem::path tiny_text() { return test::tiny_model_dir() / "model.gguf"; }
std::filesystem::path tiny_vision() { return test::tiny_model_dir() / "mmproj.gguf"; }

// The message of the ModelError `check` throws; "" when it throws nothing.
std::string model_error(const std::function<void()>& check) {
  try {
    check();
  } catch (const ModelError& e) {
    return e.what();
  }
  return "";
}

// A model folder holding `text` and `vision` (links to the tiny fixture where unchanged).
std::filesystem::path model_folder(const std::string& name, const std::filesystem::path& text, const std::filesystem::path& vision) {
  const auto dir = test::scratch_dir(name);
  std::filesystem::create_symlink(text, dir / "model.gguf");
  std::filesystem::create_symlink(vision, dir / "mmproj.gguf");
  return dir;
}

test::ProcessResult ask(const std::filesystem::path& model, const std::vector<std::string>& extra = {}) {
  const std::string images = test::images_arg(test::first_frame_images());
  std::vector<std::string> argv{test::drivevqa_binary(), "ask", "--model", model.string(), "--images", images,
                                "--max_new_tokens", "2", "-t", "2", "--image_max_tokens", "16"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back("What is ahead?");
  return test::run_process(argv);
}

// Exit code 4 and, as the last line of stderr (after any info lines), one error line naming the file.
void expect_exit_4_naming(const test::ProcessResult& r, const std::filesystem::path& file, const std::string& message) {
  EXPECT_EQ(r.exit_code, 4) << r.err;
  const std::string prefix = "drivevqa: error: " + file.string() + ": ";
  const size_t at = r.err.find(prefix);
  ASSERT_NE(at, std::string::npos) << r.err;
  EXPECT_TRUE(at == 0 || r.err[at - 1] == '\n') << r.err;
  const std::string line = r.err.substr(at);
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1) << r.err;
  EXPECT_NE(line.find(message), std::string::npos) << r.err;
}

void set_sections(gguf_context* kv, std::array<int32_t, 4> s) {
  gguf_set_arr_data(kv, "qwen2vl.rope.dimension_sections", GGUF_TYPE_INT32, s.data(), 4);
}

void duplicate_token(gguf_context* kv) {
  const int64_t id = gguf_find_key(kv, "tokenizer.ggml.tokens");
  std::vector<std::string> tokens(gguf_get_arr_n(kv, id));
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = gguf_get_arr_str(kv, id, i);
  tokens[1000] = tokens[2000];
  std::vector<const char*> raw;
  for (const auto& t : tokens) raw.push_back(t.c_str());
  gguf_set_arr_str(kv, "tokenizer.ggml.tokens", raw.data(), raw.size());
}

// The tiny text model is 128 wide, 2 layers, 4 heads (2 KV, head_dim 32), FFN 384.
const std::vector<Breakage>& text_breakages() {
  static const std::vector<Breakage> cases = {
      {"no heads", [](GgufEdit& e) { gguf_set_val_u32(e.kv(), "qwen2vl.attention.head_count", 0); },
       "qwen2vl.attention.head_count is 0"},
      {"heads not dividing the width", [](GgufEdit& e) { gguf_set_val_u32(e.kv(), "qwen2vl.attention.head_count", 3); },
       "qwen2vl.attention.head_count 3 does not divide qwen2vl.embedding_length 128"},
      {"kv heads not dividing heads", [](GgufEdit& e) { gguf_set_val_u32(e.kv(), "qwen2vl.attention.head_count_kv", 3); },
       "qwen2vl.attention.head_count_kv 3 does not divide qwen2vl.attention.head_count 4"},
      {"rope sections too wide", [](GgufEdit& e) { set_sections(e.kv(), {4, 6, 8, 0}); },
       "qwen2vl.rope.dimension_sections sums to 18, expected half the head dimension 32"},
      {"only the extra rope section", [](GgufEdit& e) { set_sections(e.kv(), {0, 0, 0, 16}); }, "has no t, h or w section"},
      {"no block count", [](GgufEdit& e) { gguf_remove_key(e.kv(), "qwen2vl.block_count"); }, "qwen2vl.block_count is missing"},
      {"too many blocks", [](GgufEdit& e) { gguf_set_val_u32(e.kv(), "qwen2vl.block_count", 600); },
       "qwen2vl.block_count is 600, expected at most 512"},
      {"zero context", [](GgufEdit& e) { gguf_set_val_u32(e.kv(), "qwen2vl.context_length", 0); }, "qwen2vl.context_length is 0"},
      {"width as int32", [](GgufEdit& e) { gguf_set_val_i32(e.kv(), "qwen2vl.embedding_length", 128); },
       "qwen2vl.embedding_length is i32, expected u32"},
      {"ffn per layer differs",
       [](GgufEdit& e) {
         const int32_t ffn[2] = {384, 256};
         gguf_set_arr_data(e.kv(), "qwen2vl.feed_forward_length", GGUF_TYPE_INT32, ffn, 2);
       },
       "qwen2vl.feed_forward_length differs between layers"},
      {"experts", [](GgufEdit& e) { gguf_set_val_u32(e.kv(), "qwen2vl.expert_count", 4); }, "qwen2vl.expert_count is set"},
      {"unknown rope scaling", [](GgufEdit& e) { gguf_set_val_str(e.kv(), "qwen2vl.rope.scaling.type", "bogus"); },
       "qwen2vl.rope.scaling.type is 'bogus'"},
      {"duplicate token", [](GgufEdit& e) { duplicate_token(e.kv()); }, "(ids 1000 and 2000)"},
      {"wrong k shape", [](GgufEdit& e) { e.reshape("blk.1.attn_k.weight", {128, 32}); },
       "tensor blk.1.attn_k.weight has shape [128, 32], expected [128, 64]"},
      {"missing ffn_up", [](GgufEdit& e) { e.remove("blk.0.ffn_up.weight"); }, "tensor blk.0.ffn_up.weight is missing"},
      {"zero dimension", [](GgufEdit& e) { e.reshape("output_norm.weight", {0}); },
       "tensor output_norm.weight has shape [0]: every dimension must be at least 1"},
      {"extra layer tensor", [](GgufEdit& e) { e.add("blk.2.attn_q.weight", {128, 128}); },
       "has tensor blk.2.attn_q.weight, which llama.cpp's qwen2vl loader does not create"},
      {"integer weights", [](GgufEdit& e) { e.retype("blk.0.attn_output.weight", GGML_TYPE_I32); },
       "tensor blk.0.attn_output.weight has type i32, expected a float or quantized type"},
  };
  return cases;
}

// The tiny vision tower is 64 wide, 4 blocks, 4 heads, FFN 96, patch 14; its projection is 128.
const std::vector<Breakage>& vision_breakages() {
  static const std::vector<Breakage> cases = {
      {"no heads", [](GgufEdit& e) { gguf_set_val_u32(e.kv(), "clip.vision.attention.head_count", 0); },
       "clip.vision.attention.head_count is 0"},
      {"heads not dividing the width", [](GgufEdit& e) { gguf_set_val_u32(e.kv(), "clip.vision.attention.head_count", 3); },
       "clip.vision.attention.head_count 3 does not divide clip.vision.embedding_length 64"},
      {"head dim not a multiple of 4", [](GgufEdit& e) { gguf_set_val_u32(e.kv(), "clip.vision.attention.head_count", 32); },
       "the vision head dimension 2 (embedding_length / head_count) is not a multiple of 4"},
      {"ffn as wide as the tower", [](GgufEdit& e) { gguf_set_val_u32(e.kv(), "clip.vision.feed_forward_length", 64); },
       "clip.vision.feed_forward_length equals embedding_length 64"},
      {"window pattern 1", [](GgufEdit& e) { gguf_set_val_u32(e.kv(), "clip.vision.n_wa_pattern", 1); },
       "clip.vision.n_wa_pattern is 1"},
      {"huge patches", [](GgufEdit& e) { gguf_set_val_u32(e.kv(), "clip.vision.patch_size", 100); },
       "clip.vision.patch_size is 100, expected 1..56"},
      {"3x3 merge", [](GgufEdit& e) { gguf_set_val_u32(e.kv(), "clip.vision.spatial_merge_size", 3); },
       "clip.vision.spatial_merge_size is 3, expected 2"},
      {"no block count", [](GgufEdit& e) { gguf_remove_key(e.kv(), "clip.vision.block_count"); }, "clip.vision.block_count is missing"},
      {"activation flag as u32", [](GgufEdit& e) { gguf_set_val_u32(e.kv(), "clip.use_silu", 1); }, "clip.use_silu is u32, expected bool"},
      {"swapped ffn_down", [](GgufEdit& e) { e.reshape("v.blk.2.ffn_down.weight", {64, 96}); },
       "tensor v.blk.2.ffn_down.weight has shape [64, 96], expected [96, 64]"},
      {"wrong merger output", [](GgufEdit& e) { e.reshape("mm.2.weight", {256, 100}); },
       "tensor mm.2.weight has shape [256, 100], expected [256, 128]"},
      {"wrong patch kernel", [](GgufEdit& e) { e.reshape("v.patch_embd.weight.1", {16, 16, 3, 64}); },
       "tensor v.patch_embd.weight.1 has shape [16, 16, 3, 64], expected [14, 14, 3, 64]"},
      {"missing q bias", [](GgufEdit& e) { e.remove("v.blk.0.attn_q.bias"); }, "tensor v.blk.0.attn_q.bias is missing"},
      {"patch bias", [](GgufEdit& e) { e.add("v.patch_embd.bias", {64}); }, "has tensor v.patch_embd.bias"},
      {"zero dimension", [](GgufEdit& e) { e.reshape("v.post_ln.weight", {0}); }, "tensor v.post_ln.weight has shape [0]"},
      {"f16 norm", [](GgufEdit& e) { e.retype("v.post_ln.weight", GGML_TYPE_F16); },
       "tensor v.post_ln.weight has type f16, expected f32"},
      {"projection for another text model",
       [](GgufEdit& e) {
         gguf_set_val_u32(e.kv(), "clip.vision.projection_dim", 100);
         e.reshape("mm.2.weight", {256, 100});
         e.reshape("mm.2.bias", {100});
       },
       "clip.vision.projection_dim is 100 but the text model's embedding width is 128"},
  };
  return cases;
}

TEST(GgufCheck, AcceptsTheTinyModelFiles) {
  const TextModelFacts text = check_text_model_file(tiny_text());
  EXPECT_EQ(text.embedding_width, 128);
  EXPECT_EQ(text.tensor_shapes.at("blk.1.attn_k.weight")[1], 64);
  EXPECT_NO_THROW(check_vision_model_file(tiny_vision(), text.embedding_width));
}

// Metadata only, as make-model and convert write it, for every preset and weight type.
TEST(GgufCheck, AcceptsEveryPresetInEveryWeightType) {
  for (const char* name : {"tiny", "small", "vision7b"}) {
    const ModelPreset& preset = model_preset(name);
    const QwenVocab vocab = qwen25vl_vocab(preset.text.vocab);
    for (ggml_type type : {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0}) {
      SCOPED_TRACE(std::string(name) + " " + ggml_type_name(type));
      GgufStreamWriter text;
      write_text_model_keys(text, {name, type, preset.text, &vocab, kQwenEndOfText, kQwenImEnd, kQwenEndOfText, "t"});
      for (const TensorPlan& t : text_tensor_plan(preset, type)) text.declare_tensor(t.name, t.type, t.ne);
      const TextModelFacts facts = check_text_model(text.kv(), "text");
      EXPECT_EQ(facts.embedding_width, preset.text.hidden);
      GgufStreamWriter vision;
      VisionModelKeys keys;
      keys.weight_type = type;
      keys.shape = preset.vision;
      keys.projection_dim = preset.text.hidden;
      write_vision_model_keys(vision, keys);
      for (const TensorPlan& t : vision_tensor_plan(preset, type)) vision.declare_tensor(t.name, t.type, t.ne);
      EXPECT_NO_THROW(check_vision_model(vision.kv(), "vision", facts.embedding_width));
    }
  }
}

TEST(GgufCheck, BrokenTextModelsAreRefusedBeforeTheEngine) {
  for (const Breakage& b : text_breakages()) {
    SCOPED_TRACE(b.what);
    const auto dir = test::scratch_dir("broken-text");
    GgufEdit edit(tiny_text());
    b.edit(edit);
    edit.write(dir / "model.gguf");
    const std::string error = model_error([&] { check_text_model_file(dir / "model.gguf"); });
    EXPECT_EQ(error.rfind((dir / "model.gguf").string() + ": ", 0), 0u) << error;
    EXPECT_NE(error.find(b.message), std::string::npos) << error;
    const auto folder = model_folder("broken-text-model", dir / "model.gguf", tiny_vision());
    expect_exit_4_naming(ask(folder), folder / "model.gguf", b.message);
  }
}

TEST(GgufCheck, BrokenVisionModelsAreRefusedBeforeTheEngine) {
  for (const Breakage& b : vision_breakages()) {
    SCOPED_TRACE(b.what);
    const auto dir = test::scratch_dir("broken-vision");
    GgufEdit edit(tiny_vision());
    b.edit(edit);
    edit.write(dir / "mmproj.gguf");
    const std::string error = model_error([&] { check_vision_model_file(dir / "mmproj.gguf", 128); });
    EXPECT_EQ(error.rfind((dir / "mmproj.gguf").string() + ": ", 0), 0u) << error;
    EXPECT_NE(error.find(b.message), std::string::npos) << error;
    const auto folder = model_folder("broken-vision-model", tiny_text(), dir / "mmproj.gguf");
    expect_exit_4_naming(ask(folder), folder / "mmproj.gguf", b.message);
  }
}

// clip.cpp reads tensor data past the end of a short file without noticing.
TEST(GgufCheck, TruncatedMmprojIsRefused) {
  const auto dir = test::scratch_dir("truncated-mmproj");
  const auto bytes = read_file_bytes(tiny_vision());
  test::write_bytes(dir / "mmproj.gguf", std::string(bytes.begin(), bytes.end() - 4096));
  const std::string error = model_error([&] { check_vision_model_file(dir / "mmproj.gguf", 128); });
  EXPECT_NE(error.find("GGUF file is truncated: tensor mm.2"), std::string::npos) << error;
  const auto folder = model_folder("truncated-mmproj-model", tiny_text(), dir / "mmproj.gguf");
  expect_exit_4_naming(ask(folder), folder / "mmproj.gguf", "GGUF file is truncated");
}

// A rank-8 adapter on blk.0's q (128 -> 128) and k (128 -> 64) projections.
void write_adapter_keys(GgufEdit& e) {
  gguf_set_val_str(e.kv(), "general.architecture", "qwen2vl");
  gguf_set_val_str(e.kv(), "general.type", "adapter");
  gguf_set_val_str(e.kv(), "adapter.type", "lora");
  gguf_set_val_f32(e.kv(), "adapter.lora.alpha", 16);
  e.add("blk.0.attn_q.weight.lora_a", {128, 8});
  e.add("blk.0.attn_q.weight.lora_b", {8, 128});
  e.add("blk.0.attn_k.weight.lora_a", {128, 8});
  e.add("blk.0.attn_k.weight.lora_b", {8, 64});
}

TEST(GgufCheck, LoraPairsMustFitTheirBaseTensors) {
  const TextModelFacts base = check_text_model_file(tiny_text());
  const std::vector<Breakage> cases = {
      {"fits", [](GgufEdit&) {}, ""},
      {"ranks differ", [](GgufEdit& e) { e.reshape("blk.0.attn_q.weight.lora_b", {4, 128}); },
       "tensor blk.0.attn_q.weight.lora_b has shape [4, 128], expected [8, 128]"},
      {"input width", [](GgufEdit& e) { e.reshape("blk.0.attn_k.weight.lora_a", {64, 8}); },
       "tensor blk.0.attn_k.weight.lora_a has shape [64, 8], expected [128, 8]"},
      {"3-D", [](GgufEdit& e) { e.reshape("blk.0.attn_k.weight.lora_a", {128, 8, 2}); }, "expected [128, 8]"},
      {"token embedding ranks differ",
       [](GgufEdit& e) {
         e.add("token_embd.weight.lora_a", {8, 151936});
         e.add("token_embd.weight.lora_b", {4, 128});
       },
       "tensor token_embd.weight.lora_b has shape [4, 128], expected [8, 128]"},
      {"half a pair", [](GgufEdit& e) { e.add("blk.1.attn_v.weight.lora_a", {128, 8}); },
       "LoRA pair for blk.1.attn_v.weight lacks its .lora_b tensor"},
      {"unknown target",
       [](GgufEdit& e) {
         e.add("blk.7.attn_q.weight.lora_a", {128, 8});
         e.add("blk.7.attn_q.weight.lora_b", {8, 128});
       },
       "targets blk.7.attn_q.weight, which the text model does not have"},
      {"alpha as text", [](GgufEdit& e) { gguf_set_val_str(e.kv(), "adapter.lora.alpha", "16"); },
       "adapter.lora.alpha is str, expected f32"},
      {"not an adapter", [](GgufEdit& e) { gguf_set_val_str(e.kv(), "general.type", "model"); },
       "general.type is 'model', expected 'adapter'"},
      {"other suffix", [](GgufEdit& e) { e.add("blk.0.attn_q.weight.lora_c", {128, 8}); }, "neither a .lora_a nor a .lora_b"},
  };
  for (const Breakage& b : cases) {
    SCOPED_TRACE(b.what);
    const auto path = test::scratch_dir("lora") / "adapter.gguf";
    GgufEdit edit;
    write_adapter_keys(edit);
    b.edit(edit);
    edit.write(path);
    gguf_init_params params{true, nullptr};
    gguf_context* g = gguf_init_from_file(path.c_str(), params);
    ASSERT_NE(g, nullptr);
    const std::string error = model_error([&] { check_lora_adapter(g, path.string(), base); });
    gguf_free(g);
    if (std::string(b.message).empty()) {
      EXPECT_EQ(error, "");
    } else {
      EXPECT_NE(error.find(b.message), std::string::npos) << error;
    }
  }
}

// The tiny preset as a Hugging Face config.json (what write_random_hf_model writes for it).
nlohmann::json tiny_hf_config() {
  return {{"architectures", {"Qwen2_5_VLForConditionalGeneration"}},
          {"hidden_size", 128}, {"intermediate_size", 384}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
          {"num_key_value_heads", 2}, {"vocab_size", 151936}, {"max_position_embeddings", 32768},
          {"rope_theta", 1000000.0}, {"rms_norm_eps", 1e-6}, {"rope_scaling", {{"type", "mrope"}, {"mrope_section", {4, 6, 6}}}},
          {"vision_config",
           {{"depth", 4}, {"hidden_size", 64}, {"intermediate_size", 96}, {"num_heads", 4}, {"out_hidden_size", 128},
            {"patch_size", 14}, {"spatial_merge_size", 2}, {"temporal_patch_size", 2}, {"fullatt_block_indexes", {1, 3}}}}};
}

std::filesystem::path write_hf_config(const std::string& name, const nlohmann::json& config) {
  const auto dir = test::scratch_dir(name);
  test::write_bytes(dir / "config.json", config.dump());
  return dir;
}

// A converted LoRA adapter whose q pair is then given a lora_b of another rank: `ask --lora
// --lora_mode runtime` picks the cached adapter up and must stop at the check.
TEST(GgufCheck, BrokenLoraPairStopsAskWithExit4) {
  const auto dir = test::scratch_dir("lora-cli");
  const auto hf = write_hf_config("lora-cli-hf", tiny_hf_config());
  write_random_lora(hf, dir / "adapter", {});
  ModelSourceOptions sources;
  sources.cache_dir = dir / "cache";
  const ModelFiles files = with_lora(find_model_files(test::tiny_model_dir()), dir / "adapter", sources, LoraMode::kRuntime);
  ASSERT_TRUE(files.lora.has_value());
  EXPECT_NO_THROW(check_lora_file(*files.lora, check_text_model_file(files.text)));
  GgufEdit edit(*files.lora);
  edit.reshape("blk.1.attn_q.weight.lora_b", {3, 128});
  edit.write(*files.lora);
  expect_exit_4_naming(ask(test::tiny_model_dir(), {"--lora", (dir / "adapter").string(), "--lora_mode", "runtime", "--cache_dir",
                                                     sources.cache_dir.string()}),
                       *files.lora, "tensor blk.1.attn_q.weight.lora_b has shape [3, 128], expected [4, 128]");
}

TEST(GgufCheckHfConfig, ImpossibleNumbersAreRefused) {
  EXPECT_NO_THROW(read_hf_config(write_hf_config("hf-ok", tiny_hf_config())));
  const std::vector<std::pair<std::function<void(nlohmann::json&)>, const char*>> cases = {
      {[](nlohmann::json& c) { c["num_attention_heads"] = 0; }, "num_attention_heads is 0"},
      {[](nlohmann::json& c) { c["num_attention_heads"] = 3; }, "num_attention_heads 3 does not divide hidden_size 128"},
      {[](nlohmann::json& c) { c["num_key_value_heads"] = 3; }, "num_key_value_heads 3 does not divide num_attention_heads 4"},
      {[](nlohmann::json& c) { c["num_hidden_layers"] = 0; }, "num_hidden_layers is 0"},
      {[](nlohmann::json& c) { c["intermediate_size"] = -1; }, "intermediate_size is -1"},
      {[](nlohmann::json& c) { c["vocab_size"] = 0; }, "vocab_size is 0"},
      {[](nlohmann::json& c) { c["max_position_embeddings"] = 0; }, "max_position_embeddings is 0"},
      {[](nlohmann::json& c) { c["rope_scaling"]["mrope_section"] = {4, 6, 8}; }, "mrope_section sums to 18"},
      {[](nlohmann::json& c) { c["rope_theta"] = 0; }, "rope_theta is 0"},
      {[](nlohmann::json& c) { c["vision_config"]["num_heads"] = 3; }, "vision_config.num_heads 3 does not divide"},
      {[](nlohmann::json& c) { c["vision_config"]["num_heads"] = 32; }, "the vision head dimension 2"},
      {[](nlohmann::json& c) { c["vision_config"]["intermediate_size"] = 64; }, "vision_config.intermediate_size equals hidden_size"},
      {[](nlohmann::json& c) { c["vision_config"]["depth"] = 0; }, "vision_config.depth is 0"},
      {[](nlohmann::json& c) { c["vision_config"]["patch_size"] = 0; }, "vision_config.patch_size is 0"},
      {[](nlohmann::json& c) { c["vision_config"]["spatial_merge_size"] = 3; }, "vision_config.spatial_merge_size is 3"},
      {[](nlohmann::json& c) { c["vision_config"]["fullatt_block_indexes"] = {0, 1, 2, 3}; }, "must start at block 1"},
  };
  for (const auto& [edit, message] : cases) {
    SCOPED_TRACE(message);
    nlohmann::json config = tiny_hf_config();
    edit(config);
    const auto dir = write_hf_config("hf-bad", config);
    try {
      read_hf_config(dir);
      ADD_FAILURE() << "accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find((dir / "config.json").string() + ": "), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  }
}

TEST(GgufCheckHfConfig, ConvertWritesNothingFromImpossibleNumbers) {
  nlohmann::json config = tiny_hf_config();
  config["num_key_value_heads"] = 3;
  const auto dir = write_hf_config("hf-convert", config);
  const auto r = test::run_process({test::drivevqa_binary(), "convert", "--model", dir.string(), "--out", (dir / "out").string()});
  EXPECT_EQ(r.exit_code, 4) << r.err;  // README "Exit codes": a model that cannot work
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("num_key_value_heads 3 does not divide num_attention_heads 4"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "out" / "model.gguf"));
}

}  // namespace
}  // namespace drivevqa
