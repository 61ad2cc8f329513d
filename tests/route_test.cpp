// Subtask classification and the routing table.
#include <gtest/gtest.h>

#include "route/route.h"
#include "route_cases.h"
#include "util/error.h"

namespace drivevqa {
namespace {

constexpr char kObj[] = "<c1,CAM_FRONT,812.4,540.0>";

TEST(Route, SeedRulesAndAdditions) {
  const std::string o = kObj;
  const std::vector<std::pair<std::pair<std::string, std::string>, Subtask>> cases = {
      {{"perception", "What is the moving status of object " + o + "? Please select the correct answer from the following options: A. Going ahead. B. Turn left. C. Stopped. D. Back up."}, Subtask::kPerceptionMcq},
      {{"perception", "What is the visual description of " + o + "?"}, Subtask::kPerceptionObjectDescription},
      {{"perception", "What are the important objects in the current scene? Those objects will be considered for the future reasoning and driving decision."}, Subtask::kPerceptionSceneDescription},
      {{"Perception", "WHAT IS THE VISUAL DESCRIPTION OF <C2,CAM_BACK,1088.3,497.5>?"}, Subtask::kPerceptionObjectDescription},
      {{"perception", "Which option fits? A. Yes B. No"}, Subtask::kPerceptionMcq},
      {{"prediction", "Would " + o + " be in the moving direction of the ego vehicle?"}, Subtask::kPrediction},
      {{"prediction", "What object should the ego vehicle notice first when the ego vehicle is getting to the next possible location?"}, Subtask::kPrediction},
      {{"planning", "What actions could the ego vehicle take based on " + o + "? Why take this action and what's the probability?"}, Subtask::kPlanningObjectDescription},
      {{"planning", "What actions taken by the ego vehicle can lead to a collision with " + o + "?"}, Subtask::kPlanningObjectDescription},
      {{"planning", "Based on the observation of " + o + ", what actions may " + o + " take?"}, Subtask::kPlanningObjectDescription},
      {{"planning", "What are the safe actions of the ego vehicle?"}, Subtask::kPlanningSceneDescription},
      {{"planning", "What's your comment on this scene?"}, Subtask::kPlanningSceneDescription},
      {{"planning", "Based on the current scene, what should the ego vehicle do?"}, Subtask::kPlanningSceneDescription},
      {{"corruption", "What's the current type of corruption? Please select the correct answer from the following options: A. Fog. B. Snow. C. Saturate. D. ZoomBlur. E. WaterSplashCorruption"}, Subtask::kCorruptionMcq},
      {{"behavior", "Predict the behavior of the ego vehicle. Please select the correct answer from the following options: A. x B. y"}, Subtask::kBehaviorMcq},
      {{"", "What are the important objects in the current scene?"}, Subtask::kPerceptionSceneDescription},
  };
  for (const auto& [input, expected] : cases) {
    EXPECT_EQ(classify(input.first, input.second), expected) << input.first << ": " << input.second;
  }
}

TEST(Route, EveryTemplateAndRareRewording) {
  size_t n = 0;
  for (const test::RouteCase& c : test::kRouteCases) {
    EXPECT_EQ(subtask_name(classify(c.category, c.question)), subtask_name(c.expected)) << c.category << ": " << c.question;
    ++n;
  }
  EXPECT_GE(n, 60u);
  // The model follows the seed's table for each case.
  RoutingTable table;
  for (const test::RouteCase& c : test::kRouteCases) {
    const bool big = c.expected == Subtask::kPerceptionSceneDescription || c.expected == Subtask::kPlanningObjectDescription ||
                     c.expected == Subtask::kPlanningSceneDescription;
    EXPECT_EQ(table.model_for(classify(c.category, c.question)), big ? ModelSize::k72B : ModelSize::k7B) << c.question;
  }
}

TEST(Route, DefaultTableIsTheSeedsAndOverridesApply) {
  RoutingTable table;
  EXPECT_EQ(table.model_for(Subtask::kPerceptionMcq), ModelSize::k7B);
  EXPECT_EQ(table.model_for(Subtask::kPerceptionObjectDescription), ModelSize::k7B);
  EXPECT_EQ(table.model_for(Subtask::kPrediction), ModelSize::k7B);
  EXPECT_EQ(table.model_for(Subtask::kCorruptionMcq), ModelSize::k7B);
  EXPECT_EQ(table.model_for(Subtask::kBehaviorMcq), ModelSize::k7B);
  EXPECT_EQ(table.model_for(Subtask::kPerceptionSceneDescription), ModelSize::k72B);
  EXPECT_EQ(table.model_for(Subtask::kPlanningObjectDescription), ModelSize::k72B);
  EXPECT_EQ(table.model_for(Subtask::kPlanningSceneDescription), ModelSize::k72B);
  table.apply_override("Prediction=72B");
  EXPECT_EQ(table.model_for(Subtask::kPrediction), ModelSize::k72B);
  EXPECT_THROW(table.apply_override("Prediction"), UsageError);
  EXPECT_THROW(table.apply_override("Nope=7B"), UsageError);
  EXPECT_THROW(table.apply_override("Prediction=13B"), UsageError);
}

}  // namespace
}  // namespace drivevqa
