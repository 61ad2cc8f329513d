// Routing pieces that route_test.cpp does not cover: subtask names both ways and --route overrides
// applied to classified questions. Classification itself is checked in-process by Route.* there.
#include <gtest/gtest.h>

#include <set>

#include "route/route.h"
#include "route_cases.h"
#include "util/error.h"
#include "util/text.h"

namespace drivevqa {
namespace {

ModelSize other_size(ModelSize m) { return m == ModelSize::k7B ? ModelSize::k72B : ModelSize::k7B; }

TEST(UnitRoute, SubtaskNamesAreDistinctAndReadBack) {
  std::set<std::string_view> names;
  for (const Subtask s : all_subtasks()) {
    names.insert(subtask_name(s));
    EXPECT_EQ(subtask_from_name(subtask_name(s)), s) << subtask_name(s);
  }
  EXPECT_EQ(names.size(), kSubtaskCount);
  EXPECT_EQ(subtask_name(Subtask::kPlanningSceneDescription), "Planning-VQAs-Scene-Description");
  EXPECT_EQ(model_size_name(ModelSize::k7B), "7B");
  EXPECT_EQ(model_size_name(ModelSize::k72B), "72B");
}

TEST(UnitRoute, AnUnknownSubtaskNameListsTheKnownOnes) {
  for (const char* bad : {"", "prediction", "Perception-MCQ", "Prediction "}) {
    try {
      subtask_from_name(bad);
      ADD_FAILURE() << "'" << bad << "' was taken as a subtask";
    } catch (const UsageError& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(std::string("'") + bad + "'"), std::string::npos) << message;
      EXPECT_NE(message.find("Behavior-MCQs"), std::string::npos) << message;
    }
  }
}

// An override moves exactly the questions of its subtask to the other model, and the last
// override of a subtask wins. The model's size is read in any case; the subtask's name is exact.
TEST(UnitRoute, AnOverrideMovesOnlyItsSubtasksQuestions) {
  const RoutingTable defaults;
  for (const Subtask overridden : all_subtasks()) {
    SCOPED_TRACE(std::string(subtask_name(overridden)));
    const ModelSize moved_to = other_size(defaults.model_for(overridden));
    RoutingTable table;
    table.apply_override(std::string(subtask_name(overridden)) + "=" + to_lower(model_size_name(moved_to)));
    size_t moved = 0;
    for (const test::RouteCase& c : test::kRouteCases) {
      const Subtask s = classify(c.category, c.question);
      const ModelSize expected = s == overridden ? moved_to : defaults.model_for(s);
      EXPECT_EQ(table.model_for(s), expected) << c.question;
      moved += s == overridden ? 1 : 0;
    }
    EXPECT_GT(moved, 0u) << "route_cases.h has no question of this subtask";
    table.apply_override(std::string(subtask_name(overridden)) + "=" + std::string(model_size_name(defaults.model_for(overridden))));
    EXPECT_EQ(table.model_for(overridden), defaults.model_for(overridden));
  }
}

TEST(UnitRoute, MalformedOverridesAreUsageErrorsAndChangeNothing) {
  for (const char* bad : {"", "=", "Prediction", "Prediction=", "Prediction=13B", "Prediction=72B=7B", "prediction=72B",
                          "=72B", "Prediction =72B"}) {
    RoutingTable table;
    EXPECT_THROW(table.apply_override(bad), UsageError) << "'" << bad << "'";
    EXPECT_EQ(table.model_for(Subtask::kPrediction), ModelSize::k7B) << "'" << bad << "'";
  }
}

}  // namespace
}  // namespace drivevqa
