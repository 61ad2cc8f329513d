// The README's table of which folder uses which equals the stage libraries' DEPS in
// src/CMakeLists.txt, and every folder of src/ is a stage there.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "support/test_support.h"

namespace drivevqa {
namespace {

using Graph = std::map<std::string, std::set<std::string>>;

// "drivevqa_stage(name\n  DEPS a b c\n ..." blocks.
Graph cmake_stages() {
  const std::string text = test::read_text(std::filesystem::path(DRIVEVQA_SOURCE_DIR) / "src" / "CMakeLists.txt");
  Graph graph;
  for (size_t at = text.find("\ndrivevqa_stage("); at != std::string::npos; at = text.find("\ndrivevqa_stage(", at + 1)) {
    const size_t name_at = at + 16;
    const std::string name = text.substr(name_at, text.find_first_of("\n )", name_at) - name_at);
    const size_t end = text.find(')', name_at);
    const size_t deps = text.find("DEPS ", name_at);
    std::set<std::string>& uses = graph[name];
    if (deps != std::string::npos && deps < end) {
      std::istringstream words(text.substr(deps + 5, text.find('\n', deps) - deps - 5));
      for (std::string w; words >> w;) uses.insert(w);
    }
  }
  return graph;
}

// The "folder uses" block of README "Layout".
Graph readme_table() {
  const std::string text = test::read_text(std::filesystem::path(DRIVEVQA_SOURCE_DIR) / "README.md");
  const size_t start = text.find("folder     uses\n");
  Graph graph;
  if (start == std::string::npos) return graph;
  std::istringstream lines(text.substr(start, text.find("```", start) - start));
  std::string line;
  std::getline(lines, line);  // the heading
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string name;
    words >> name;
    if (name.empty() || name == "cli") continue;
    std::set<std::string>& uses = graph[name];
    for (std::string w; words >> w;) {
      if (w != "-") uses.insert(w);
    }
  }
  return graph;
}

TEST(Layout, TheReadmeTableEqualsTheStageLibraries) {
  const Graph targets = cmake_stages();
  ASSERT_GE(targets.size(), 10u);
  EXPECT_EQ(readme_table(), targets);
}

TEST(Layout, EveryFolderOfSrcIsAStage) {
  const Graph targets = cmake_stages();
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(DRIVEVQA_SOURCE_DIR) / "src")) {
    const std::string name = e.path().filename().string();
    if (e.is_directory() && name != "cli") EXPECT_EQ(targets.count(name), 1u) << name << " is not a stage library";
  }
}

}  // namespace
}  // namespace drivevqa
