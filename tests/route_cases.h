// Generated list of routing cases: every Track 1 template, the rare planning rewordings and the
// seed's corner cases, with the subtask each must get.
#pragma once

#include "route/route.h"

namespace drivevqa::test {

struct RouteCase {
  const char* category;
  const char* question;
  Subtask expected;
};

inline const RouteCase kRouteCases[] = {
    {"perception", "What is the moving status of object <c1,CAM_FRONT,812.4,540.0>? Please select the correct answer from the following options: A. Going ahead. B. Turn left. C. Stopped. D. Back up.", Subtask::kPerceptionMcq},
    {"perception", "What is the moving status of object <c2,CAM_BACK,1088.3,497.5>? Please select the correct answer from the following options: A. Turn right. B. Stopped. C. Reverse parking. D. Going ahead.", Subtask::kPerceptionMcq},
    {"perception", "What is the moving status of object <c3,CAM_FRONT_LEFT,420.0,560.0>? Please select the correct answer from the following options: A. Drive backward. B. Turn left. C. Going ahead. D. Stopped.", Subtask::kPerceptionMcq},
    {"perception", "What is the visual description of <c1,CAM_FRONT,812.4,540.0>?", Subtask::kPerceptionObjectDescription},
    {"perception", "What is the visual description of <c2,CAM_BACK,1088.3,497.5>?", Subtask::kPerceptionObjectDescription},
    {"perception", "What is the visual description of <c3,CAM_FRONT_LEFT,420.0,560.0>?", Subtask::kPerceptionObjectDescription},
    {"perception", "What is the visual description of <c4,CAM_BACK_RIGHT,300.0,530.0>?", Subtask::kPerceptionObjectDescription},
    {"perception", "What is the visual description of <c5,CAM_FRONT_RIGHT,1210.6,520.2>?", Subtask::kPerceptionObjectDescription},
    {"perception", "What is the visual description of <c6,CAM_BACK_LEFT,880.0,540.0>?", Subtask::kPerceptionObjectDescription},
    {"perception", "What are the important objects in the current scene? Those objects will be considered for the future reasoning and driving decision.", Subtask::kPerceptionSceneDescription},
    {"PERCEPTION", "what are the important objects in the current scene?", Subtask::kPerceptionSceneDescription},
    {"perception", "Is <c1,CAM_FRONT,812.4,540.0> a traffic sign or a road barrier?", Subtask::kPerceptionSceneDescription},
    {"perception", "Which lane is the ego vehicle in? A. Left B. Right", Subtask::kPerceptionMcq},
    {"perception", "What is the status of the car to the front of the ego vehicle? Select from the following options: parked, moving.", Subtask::kPerceptionMcq},
    {"prediction", "Would <c1,CAM_FRONT,812.4,540.0> be in the moving direction of the ego vehicle?", Subtask::kPrediction},
    {"prediction", "Will <c1,CAM_FRONT,812.4,540.0> be in the moving direction of <c2,CAM_BACK,1088.3,497.5>?", Subtask::kPrediction},
    {"prediction", "Will <c2,CAM_BACK,1088.3,497.5> change its motion state based on <c1,CAM_FRONT,812.4,540.0>?", Subtask::kPrediction},
    {"prediction", "Would <c1,CAM_FRONT,812.4,540.0> take <c2,CAM_BACK,1088.3,497.5> into account?", Subtask::kPrediction},
    {"prediction", "Would <c3,CAM_FRONT_LEFT,420.0,560.0> be in the moving direction of the ego vehicle?", Subtask::kPrediction},
    {"prediction", "Will <c3,CAM_FRONT_LEFT,420.0,560.0> be in the moving direction of <c4,CAM_BACK_RIGHT,300.0,530.0>?", Subtask::kPrediction},
    {"prediction", "Will <c4,CAM_BACK_RIGHT,300.0,530.0> change its motion state based on <c3,CAM_FRONT_LEFT,420.0,560.0>?", Subtask::kPrediction},
    {"prediction", "Would <c3,CAM_FRONT_LEFT,420.0,560.0> take <c4,CAM_BACK_RIGHT,300.0,530.0> into account?", Subtask::kPrediction},
    {"prediction", "Would <c5,CAM_FRONT_RIGHT,1210.6,520.2> be in the moving direction of the ego vehicle?", Subtask::kPrediction},
    {"prediction", "Will <c5,CAM_FRONT_RIGHT,1210.6,520.2> be in the moving direction of <c6,CAM_BACK_LEFT,880.0,540.0>?", Subtask::kPrediction},
    {"prediction", "Will <c6,CAM_BACK_LEFT,880.0,540.0> change its motion state based on <c5,CAM_FRONT_RIGHT,1210.6,520.2>?", Subtask::kPrediction},
    {"prediction", "Would <c5,CAM_FRONT_RIGHT,1210.6,520.2> take <c6,CAM_BACK_LEFT,880.0,540.0> into account?", Subtask::kPrediction},
    {"prediction", "What object should the ego vehicle notice first when the ego vehicle is getting to the next possible location? What is the state of the object that is first noticed by the ego vehicle and what action should the ego vehicle take? What object should the ego vehicle notice second when the ego vehicle is getting to the next possible location? What object should the ego vehicle notice third?", Subtask::kPrediction},
    {"Prediction", "What object should the ego vehicle notice first when the ego vehicle is turning left?", Subtask::kPrediction},
    {"planning", "What actions could the ego vehicle take based on <c1,CAM_FRONT,812.4,540.0>? Why take this action and what's the probability?", Subtask::kPlanningObjectDescription},
    {"planning", "What actions taken by the ego vehicle can lead to a collision with <c1,CAM_FRONT,812.4,540.0>?", Subtask::kPlanningObjectDescription},
    {"planning", "Based on the observation of <c1,CAM_FRONT,812.4,540.0>, what actions may <c1,CAM_FRONT,812.4,540.0> take?", Subtask::kPlanningObjectDescription},
    {"planning", "What actions could the ego vehicle take based on <c2,CAM_BACK,1088.3,497.5>? Why take this action and what's the probability?", Subtask::kPlanningObjectDescription},
    {"planning", "What actions taken by the ego vehicle can lead to a collision with <c2,CAM_BACK,1088.3,497.5>?", Subtask::kPlanningObjectDescription},
    {"planning", "Based on the observation of <c2,CAM_BACK,1088.3,497.5>, what actions may <c2,CAM_BACK,1088.3,497.5> take?", Subtask::kPlanningObjectDescription},
    {"planning", "What actions could the ego vehicle take based on <c3,CAM_FRONT_LEFT,420.0,560.0>? Why take this action and what's the probability?", Subtask::kPlanningObjectDescription},
    {"planning", "What actions taken by the ego vehicle can lead to a collision with <c3,CAM_FRONT_LEFT,420.0,560.0>?", Subtask::kPlanningObjectDescription},
    {"planning", "Based on the observation of <c3,CAM_FRONT_LEFT,420.0,560.0>, what actions may <c3,CAM_FRONT_LEFT,420.0,560.0> take?", Subtask::kPlanningObjectDescription},
    {"planning", "What actions could the ego vehicle take based on <c4,CAM_BACK_RIGHT,300.0,530.0>? Why take this action and what's the probability?", Subtask::kPlanningObjectDescription},
    {"planning", "What actions taken by the ego vehicle can lead to a collision with <c4,CAM_BACK_RIGHT,300.0,530.0>?", Subtask::kPlanningObjectDescription},
    {"planning", "Based on the observation of <c4,CAM_BACK_RIGHT,300.0,530.0>, what actions may <c4,CAM_BACK_RIGHT,300.0,530.0> take?", Subtask::kPlanningObjectDescription},
    {"planning", "What are the safe actions of the ego vehicle?", Subtask::kPlanningSceneDescription},
    {"planning", "What are the dangerous actions of the ego vehicle?", Subtask::kPlanningSceneDescription},
    {"planning", "What's your comment on this scene?", Subtask::kPlanningSceneDescription},
    {"planning", "Are there any issues worth noting in this scene?", Subtask::kPlanningSceneDescription},
    {"planning", "Is there any other issue worth noting in this scene?", Subtask::kPlanningSceneDescription},
    {"planning", "What is the priority of the objects that the ego vehicle should consider?(in descending order)", Subtask::kPlanningSceneDescription},
    {"planning", "In what order should the ego vehicle give priority to the objects in this scene?", Subtask::kPlanningSceneDescription},
    {"planning", "What is the traffic signal that the ego vehicle should pay attention to?", Subtask::kPlanningSceneDescription},
    {"planning", "What traffic signal should the ego vehicle obey at the moment?", Subtask::kPlanningSceneDescription},
    {"planning", "What situation or condition will affect the driving of the ego vehicle?", Subtask::kPlanningSceneDescription},
    {"planning", "What situations or conditions could affect the driving of the ego vehicle?", Subtask::kPlanningSceneDescription},
    {"planning", "What impact does this situation have on the ego vehicle's driving?", Subtask::kPlanningSceneDescription},
    {"planning", "What is the impact of the weather on the driving of the ego vehicle?", Subtask::kPlanningSceneDescription},
    {"planning", "In this scenario, what are safe actions to take for the ego vehicle?", Subtask::kPlanningSceneDescription},
    {"planning", "In this scenario, what are dangerous actions to take for the ego vehicle?", Subtask::kPlanningSceneDescription},
    {"planning", "What actions should the ego vehicle take to stay safe in this scene?", Subtask::kPlanningSceneDescription},
    {"planning", "Based on the current situation, what is the safest action for the ego vehicle?", Subtask::kPlanningSceneDescription},
    {"planning", "What should the ego vehicle pay attention to when driving through this intersection?", Subtask::kPlanningSceneDescription},
    {"planning", "Are there any obstacles that block the way of the ego vehicle?", Subtask::kPlanningSceneDescription},
    {"planning", "What would be a collision risk for the ego vehicle here?", Subtask::kPlanningSceneDescription},
    {"planning", "What is the probability of colliding with <c1,CAM_FRONT,812.4,540.0> after the ego vehicle goes straight and keeps the same speed?", Subtask::kPlanningSceneDescription},
    {"planning", "Is <c2,CAM_BACK,1088.3,497.5> a danger to the ego vehicle? What actions should be taken?", Subtask::kPlanningSceneDescription},
    {"planning", "What actions may the ego vehicle take considering <c3,CAM_FRONT_LEFT,420.0,560.0>?", Subtask::kPlanningObjectDescription},
    {"corruption", "What's the current type of corruption? Please select the correct answer from the following options: A. Fog. B. Snow. C. Saturate. D. ZoomBlur. E. WaterSplashCorruption", Subtask::kCorruptionMcq},
    {"perception", "What's the current type of corruption? Please select the correct answer from the following options: A. Fog. B. Snow. C. Saturate. D. ZoomBlur. E. WaterSplashCorruption", Subtask::kCorruptionMcq},
    {"behavior", "Predict the behavior of the ego vehicle. Please select the correct answer from the following options: A. The ego vehicle is going straight. The ego vehicle is driving slowly. B. The ego vehicle is steering to the left.", Subtask::kBehaviorMcq},
    {"", "Predict the behavior of the ego vehicle. Please select the correct answer from the following options: A. x. B. y.", Subtask::kBehaviorMcq},
};

}  // namespace drivevqa::test
