// Qwen2.5-VL chat prompts (ChatML) for six-camera driving questions.
//
// What must hold: images appear in the user turn in the fixed camera order, each as one
// kImageMarker (which the engine replaces by <|vision_start|> image <|vision_end|>), and the text
// rendered here is exactly what the model's own chat template renders for the same two messages.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "dataset/object_refs.h"
#include "dataset/question_file.h"  // kCameraOrder

namespace drivevqa {

// Equal to mtmd_default_marker(); the engine checks this at load time.
inline constexpr std::string_view kImageMarker = "<__media__>";

struct ChatPrompt {
  std::string system;  // empty: no system turn at all
  std::string user;  // holds one kImageMarker per image
};

// System turn, user turn, and the opening of the assistant turn.
std::string render_chatml(const ChatPrompt& prompt);

// One labelled marker per camera ("CAM_FRONT: <marker>\n"), in the order given.
std::string image_block(const std::vector<std::string>& camera_names);

// One earlier key frame shown before the current images: how long before, and its cameras.
struct HistoryView {
  double seconds_earlier = 0;
  std::vector<std::string> cameras;
};
// Nuscenes key frames are 0.5 s apart: history frame k (0: the most recent) is (k + 1) x 0.5 s earlier.
inline constexpr double kKeyFrameSeconds = 0.5;

// One labelled marker per camera of each earlier frame, in the order given (oldest first), e.g.
// "CAM_FRONT, 1.0 s earlier: <marker>\n".
std::string history_block(const std::vector<HistoryView>& history);

// One line and marker per object close-up ("Close-up of c1 in CAM_FRONT, ...: <marker>\n").
std::string close_up_block(const std::vector<ObjectRef>& objects);

// The built-in system prompt: role, camera order, object-reference format, answer style.
// `structured_answers`: the answer's form is stated per question (prompt/answer_shape.h); false:
// the seed's rules (the option's letter and text, then an explanation).
const std::string& default_system_prompt(bool structured_answers = true);

}  // namespace drivevqa
