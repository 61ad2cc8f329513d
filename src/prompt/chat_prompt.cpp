#include "prompt/chat_prompt.h"

#include <cstdio>

namespace drivevqa {

std::string render_chatml(const ChatPrompt& prompt) {
  std::string text;
  text.reserve(prompt.system.size() + prompt.user.size() + 96);
  if (!prompt.system.empty()) {
    text += "<|im_start|>system\n";
    text += prompt.system;
    text += "<|im_end|>\n";
  }
  text += "<|im_start|>user\n";
  text += prompt.user;
  text += "<|im_end|>\n<|im_start|>assistant\n";
  return text;
}

namespace {

// "<label>: <marker>\n": how every image is introduced.
void add_image_line(std::string& text, const std::string& label) {
  text += label;
  text += ": ";
  text += kImageMarker;
  text += "\n";
}

}  // namespace

std::string image_block(const std::vector<std::string>& camera_names) {
  std::string text;
  for (const std::string& camera : camera_names) add_image_line(text, camera);
  return text;
}

std::string history_block(const std::vector<HistoryView>& history) {
  std::string text;
  for (const HistoryView& frame : history) {
    char when[32];
    std::snprintf(when, sizeof when, "%.1f s earlier", frame.seconds_earlier);
    for (const std::string& camera : frame.cameras) add_image_line(text, camera + ", " + when);
  }
  return text;
}

std::string close_up_block(const std::vector<ObjectRef>& objects) {
  std::string text;
  for (const ObjectRef& ref : objects) {
    // Label and camera come from the question's reference form: no image marker can be in them.
    add_image_line(text, "Close-up of " + ref.label + " in " + ref.camera + ", its marker on the object");
  }
  return text;
}

const std::string& default_system_prompt(bool structured_answers) {
  static const std::string kCommon =
      "You are the driving assistant of an autonomous car. You see six camera images taken at the same "
      "moment, in this order: CAM_FRONT, CAM_FRONT_RIGHT, CAM_FRONT_LEFT, CAM_BACK, CAM_BACK_RIGHT, "
      "CAM_BACK_LEFT. An object is written as <id, camera, x, y>: (x, y) is the centre of its box in that "
      "camera's 1600x900 image. ";
  static const std::string kAttention =
      "Pay attention to what objects are, where they are and how they move, as far as it matters "
      "for driving.";
  static const std::string kStructured =
      kCommon + "Answer in exactly the form each question asks for, without repeating the question. " + kAttention;
  static const std::string kFree =
      kCommon +
      "For a multiple-choice question, answer with the letter and text of the "
      "option you choose, then explain briefly. For a yes/no question, begin with Yes or No, then explain "
      "briefly. " + kAttention;
  return structured_answers ? kStructured : kFree;
}

}  // namespace drivevqa
