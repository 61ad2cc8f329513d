// LoRA adapters against an independent reference: the base checkpoint merged with W + s*B*A in
// f32 here in the test, converted, and run without any adapter.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "convert/hf_to_gguf.h"
#include "convert/safetensors.h"
#include "engine/answer.h"
#include "lora/lora_convert.h"
#include "modelgen/hf_model_writer.h"
#include "modelgen/lora_writer.h"
#include "modelgen/safetensors_writer.h"
#include "prompt/chat_prompt.h"
#include "support/test_support.h"
#include "util/error.h"

namespace drivevqa {
namespace {

// The scale PEFT applies, written out independently of the code under test.
float reference_scale(const std::string& module, const RandomLoraOptions& o, int* rank) {
  *rank = o.rank;
  float alpha = o.alpha;
  for (const auto& [key, r] : o.rank_pattern) {
    if (module.size() >= key.size() && module.compare(module.size() - key.size(), key.size(), key) == 0) *rank = r;
  }
  for (const auto& [key, a] : o.alpha_pattern) {
    if (module.size() >= key.size() && module.compare(module.size() - key.size(), key.size(), key) == 0) alpha = a;
  }
  return o.use_rslora ? alpha / std::sqrt(static_cast<float>(*rank)) : alpha / static_cast<float>(*rank);
}

// Writes base + merged adapter as a new Hugging Face folder.
void write_merged_reference(const std::filesystem::path& base, const std::filesystem::path& adapter_dir,
                            const RandomLoraOptions& o, const std::filesystem::path& out) {
  std::filesystem::create_directories(out);
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"}) {
    std::filesystem::copy_file(base / f, out / f);
  }
  const SafetensorsFile weights(base / "model.safetensors");
  const SafetensorsFile adapter(adapter_dir / "adapter_model.safetensors");
  std::vector<SafetensorsEntry> entries;
  for (const auto& [name, view] : weights.tensors()) entries.push_back({name, view.shape});
  write_safetensors_f32(out / "model.safetensors", entries, [&](const SafetensorsEntry& e) {
    std::vector<float> w = weights.tensors().at(e.name).to_f32();
    const std::string module = e.name.substr(0, e.name.size() - 7);  // drop ".weight"
    const auto a_it = adapter.tensors().find("base_model.model." + module + ".lora_A.weight");
    if (a_it == adapter.tensors().end()) return w;
    const std::vector<float> a = a_it->second.to_f32();
    const std::vector<float> b = adapter.tensors().at("base_model.model." + module + ".lora_B.weight").to_f32();
    int r = 0;
    const float s = reference_scale(module, o, &r);
    const int64_t out_dim = e.shape[0], in_dim = e.shape[1];
    for (int64_t i = 0; i < out_dim; ++i)
      for (int64_t j = 0; j < in_dim; ++j) {
        double acc = 0;
        for (int k = 0; k < r; ++k) acc += static_cast<double>(b[i * r + k]) * a[k * in_dim + j];
        w[i * in_dim + j] += static_cast<float>(s * acc);
      }
    return w;
  });
}

struct Outputs {
  std::vector<float> logits;
  std::vector<float> embedding;  // the first image's vision-tower output
  std::vector<llama_token> answer;  // greedy
};

Outputs run_prompt(const ModelFiles& files) {
  EngineOptions options;
  options.n_threads = 2;
  options.image_max_tokens = 32;
  const auto model = Model::load(files, options);
  std::vector<RgbImage> images;
  std::vector<const RgbImage*> ptrs;
  std::vector<std::string> cams;
  for (const auto& p : test::first_frame_images()) images.push_back(load_image_file(p));
  for (size_t i = 0; i < images.size(); ++i) {
    ptrs.push_back(&images[i]);
    cams.emplace_back(kCameraOrder[i]);
  }
  EncodedPrompt encoded = encode(*model, tokenize(*model, render_chatml({"", image_block(cams) + "What is ahead?"}), ptrs));
  Session session(*model, SessionOptions{2048, 2048, 512, 1, GGML_TYPE_F32});  // f32 throughout
  const llama_pos n_past = session.evaluate(encoded, 0, 0, true);
  Outputs out;
  out.logits.assign(session.last_logits().begin(), session.last_logits().end());
  GenerationParams greedy;
  greedy.max_new_tokens = 8;
  out.answer = session.generate(0, n_past, greedy).tokens;
  for (size_t i = 0; i < encoded.image_embeddings.size(); ++i) {
    if (!encoded.image_embeddings[i].empty()) {
      out.embedding = encoded.image_embeddings[i];
      break;
    }
  }
  return out;
}

double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (a[i] - b[i]) * static_cast<double>(a[i] - b[i]);
    norm += b[i] * static_cast<double>(b[i]);
  }
  return std::sqrt(diff / norm);
}

class LoraTest : public ::testing::Test {
 protected:
  void check_against_reference(const RandomLoraOptions& o, const std::string& name) {
    const auto dir = test::scratch_dir("lora-" + name);
    // A calm random model (init scale 0.5): with the default 2.0 the network is chaotic and any
    // rounding difference (unmerged B(Ax) vs merged W) grows to ~1e-4 by the logits on its own.
    RandomModelOptions model{"tiny", 1, GGML_TYPE_F32};
    model.init_scale = 0.5f;
    write_random_hf_model(dir / "hf", model);
    write_random_lora(dir / "hf", dir / "adapter", o);
    convert_hf_model(dir / "hf", dir / "base", GGML_TYPE_F32);
    write_merged_reference(dir / "hf", dir / "adapter", o, dir / "merged-hf");
    convert_hf_model(dir / "merged-hf", dir / "merged", GGML_TYPE_F32);

    const ModelFiles base = find_model_files(dir / "base");
    const LoraFiles lora = convert_lora(PeftAdapter(dir / "adapter"), base, dir / "lora");
    ModelFiles with = base;
    with.lora = lora.text_adapter;
    with.vision = lora.vision;
    const Outputs adapted = run_prompt(with), reference = run_prompt(find_model_files(dir / "merged")),
                  plain = run_prompt(base);

    const double logit_error = relative_error(adapted.logits, reference.logits);
    const double embedding_error = relative_error(adapted.embedding, reference.embedding);
    std::printf("%s: logits rel. error %.2e (vs base %.2e); image embedding rel. error %.2e (vs base %.2e)\n",
                name.c_str(), logit_error, relative_error(plain.logits, reference.logits), embedding_error,
                relative_error(plain.embedding, reference.embedding));
    EXPECT_LE(logit_error, 1e-4);
    EXPECT_EQ(adapted.answer, reference.answer);
    EXPECT_NE(plain.answer, reference.answer);
    EXPECT_GT(relative_error(plain.logits, reference.logits), 1e-2) << "the adapter must change the output";
    EXPECT_LE(embedding_error, 1e-4);
    if (o.vision) EXPECT_GT(relative_error(plain.embedding, reference.embedding), 1e-2);
    else EXPECT_EQ(plain.embedding, adapted.embedding);
  }
};

TEST_F(LoraTest, TextLoraAtRunTimeMatchesMergedWeights) { check_against_reference({}, "text"); }

TEST_F(LoraTest, VisionLoraIsMergedIntoTheVisionTower) {
  RandomLoraOptions o;
  o.vision = true;
  check_against_reference(o, "vision");
}

TEST_F(LoraTest, RsLoraAndPatternsScaleEachModule) {
  RandomLoraOptions o;
  o.rank = 4;
  o.alpha = 6;
  o.use_rslora = true;
  o.rank_pattern = {{"q_proj", 2}};
  o.alpha_pattern = {{"down_proj", 3.0f}};
  check_against_reference(o, "rslora-patterns");
  PeftConfig c;
  c.r = 4;
  c.alpha = 6;
  c.use_rslora = true;
  c.rank_pattern = {{"q_proj", 2}};
  int r = 0;
  EXPECT_FLOAT_EQ(peft_scale(c, "model.layers.0.self_attn.q_proj", &r), 6.0f / std::sqrt(2.0f));
  EXPECT_EQ(r, 2);
  c.use_rslora = false;
  EXPECT_FLOAT_EQ(peft_scale(c, "model.layers.0.self_attn.k_proj", &r), 1.5f);
  EXPECT_EQ(r, 4);
}

TEST(Lora, LatestCheckpointIsChosenNumerically) {
  const auto dir = test::scratch_dir("lora-checkpoints");
  test::copy_tiny_hf_model(dir / "hf");
  RandomLoraOptions o;
  o.checkpoints = {500, 1000, 1471, 99};
  write_random_lora(dir / "hf", dir / "adapter", o);
  EXPECT_EQ(select_adapter_dir(dir / "adapter").filename(), "checkpoint-1471");
  EXPECT_EQ(PeftAdapter(dir / "adapter").dir().filename(), "checkpoint-1471");
  EXPECT_THROW(select_adapter_dir(dir / "hf"), InputError);
}

TEST(Lora, DoraAndForeignAdaptersAreRefused) {
  const auto dir = test::scratch_dir("lora-refused");
  test::copy_tiny_hf_model(dir / "tiny");
  RandomLoraOptions dora;
  dora.use_dora = true;
  write_random_lora(dir / "tiny", dir / "dora", dora);
  try {
    PeftAdapter adapter(dir / "dora");
    FAIL() << "a DoRA adapter was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("DoRA"), std::string::npos) << e.what();
  }
  // An adapter made for the small preset does not fit the tiny model.
  write_random_hf_model(dir / "small", {"small", 1, GGML_TYPE_F32});
  write_random_lora(dir / "small", dir / "for-small", {});
  convert_hf_model(dir / "tiny", dir / "tiny-gguf", GGML_TYPE_F32);
  try {
    convert_lora(PeftAdapter(dir / "for-small"), find_model_files(dir / "tiny-gguf"), dir / "out");
    FAIL() << "an adapter for another model was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("an adapter for another model?"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir / "small");
}

}  // namespace
}  // namespace drivevqa
