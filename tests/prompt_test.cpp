// The chat prompt: layout, camera order, and agreement with the model's own chat template.
#include <gtest/gtest.h>

#include "engine/model.h"
#include "prompt/chat_prompt.h"
#include "support/test_support.h"

namespace drivevqa {
namespace {

TEST(ChatPrompt, LayoutAndCameraOrder) {
  std::vector<std::string> cams(kCameraOrder.begin(), kCameraOrder.end());
  const std::string text = render_chatml({"SYS", image_block(cams) + "Q?"});
  EXPECT_EQ(text.rfind("<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\nCAM_FRONT: <__media__>\n", 0), 0u);
  EXPECT_LT(text.find("CAM_FRONT_RIGHT:"), text.find("CAM_FRONT_LEFT:"));
  EXPECT_LT(text.find("CAM_FRONT_LEFT:"), text.find("CAM_BACK:"));
  EXPECT_LT(text.find("CAM_BACK_RIGHT:"), text.find("CAM_BACK_LEFT:"));
  EXPECT_NE(text.find("CAM_BACK_LEFT: <__media__>\nQ?<|im_end|>\n<|im_start|>assistant\n"), std::string::npos);
  EXPECT_EQ(render_chatml({"", "Q"}), "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatPrompt, MatchesTheModelsChatTemplate) {
  EngineOptions options;
  options.n_threads = 2;
  options.warmup = false;
  const auto model = Model::load(find_model_files(test::tiny_model_dir()), options);
  const char* tmpl = llama_model_chat_template(model->text(), nullptr);
  ASSERT_NE(tmpl, nullptr);
  const ChatPrompt prompt{default_system_prompt(), "CAM_FRONT: <__media__>\nWhat is ahead?"};
  const llama_chat_message messages[] = {{"system", prompt.system.c_str()}, {"user", prompt.user.c_str()}};
  std::string buf(8192, '\0');
  const int32_t n = llama_chat_apply_template(tmpl, messages, 2, true, buf.data(), static_cast<int32_t>(buf.size()));
  ASSERT_GT(n, 0);
  buf.resize(static_cast<size_t>(n));
  EXPECT_EQ(render_chatml(prompt), buf);
  EXPECT_EQ(std::string(mtmd_default_marker()), std::string(kImageMarker));
}

}  // namespace
}  // namespace drivevqa
