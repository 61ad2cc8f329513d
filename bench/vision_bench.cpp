// One model's vision tower on one image, for bench/vision.sh: loads the model, sizes the image as
// `run` does, encodes it `repeat` times and prints one JSON line (tokens, fastest encode, load time).
// The window-attention path is chosen by the environment (MTMD_QWEN25VL_WINDOW_ATTN=dense or not),
// and peak memory is measured around the whole process by the script.
//
//   drivevqa_vision_bench MODEL_DIR IMAGE [--max_pixels N] [--repeat R] [--threads T] [--flash_attn on|off|auto]
//                         [--dump FILE]
// --dump writes the last embedding as raw f32, for comparing the two paths.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "engine/image_resize.h"
#include "engine/model.h"
#include "engine/prompt_tokens.h"
#include "util/stopwatch.h"

using namespace drivevqa;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL_DIR IMAGE [--max_pixels N] [--repeat R] [--threads T] [--flash_attn on|off|auto] [--dump FILE]\n", argv[0]);
    return 2;
  }
  ImageSizing sizing;
  int repeat = 1;
  EngineOptions options;
  options.n_threads = 2;
  std::string dump;
  for (int i = 3; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--max_pixels") sizing.max_pixels = std::stoll(value);
    else if (flag == "--repeat") repeat = std::stoi(value);
    else if (flag == "--threads") options.n_threads = std::stoi(value);
    else if (flag == "--dump") dump = value;
    else if (flag == "--flash_attn") options.flash_attention = value == "on" ? FlashAttention::kOn : value == "off" ? FlashAttention::kOff : FlashAttention::kAuto;
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  try {
    install_engine_logging();
    options.image_max_tokens = static_cast<int>(sizing.tokens_for(sizing.max_pixels));
    const auto load_start = std::chrono::steady_clock::now();
    const auto model = Model::load(find_model_files(argv[1]), options);
    const double load_seconds = seconds_since(load_start);
    const RgbImage image = load_image_file(argv[2], &sizing);
    const RgbImage* pointer = &image;
    double best = 1e30;
    std::vector<float> embedding;
    size_t tokens = 0;
    for (int r = 0; r < repeat; ++r) {
      TokenizedPrompt prompt = tokenize(*model, mtmd_default_marker(), {&pointer, 1}, false);
      tokens = prompt.image_token_count();
      model->require_room_to_encode(tokens);
      const auto start = std::chrono::steady_clock::now();
      EncodedPrompt encoded = encode(*model, std::move(prompt));
      best = std::min(best, seconds_since(start));
      for (auto& e : encoded.image_embeddings) {
        if (!e.empty()) embedding = std::move(e);
      }
    }
    if (!dump.empty()) {
      std::ofstream out(dump, std::ios::binary);
      out.write(reinterpret_cast<const char*>(embedding.data()), static_cast<std::streamsize>(embedding.size() * sizeof(float)));
    }
    std::printf("{\"width\": %d, \"height\": %d, \"tokens\": %zu, \"encode_seconds\": %.3f, \"load_seconds\": %.3f}\n",
                image.width, image.height, tokens, best, load_seconds);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vision_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
