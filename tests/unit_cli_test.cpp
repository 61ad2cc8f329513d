// Boolean flags (cli/bool_flag.h) parsed in-process by CLI11, as the drivevqa command line parses them.
#include <gtest/gtest.h>

#include "cli/bool_flag.h"
#include "util/error.h"

namespace drivevqa {
namespace {

struct Parsed {
  bool value = false;
  bool given = false;
};

// Parses `command_line` (without the program name) for one flag with `default_value`.
Parsed parse_flag(const std::string& command_line, bool default_value) {
  CLI::App app("unit");
  BoolFlag flag(app, "--do_sample,--do-sample", default_value, "Sample");
  double temperature = 0;
  app.add_option("--temperature", temperature);
  app.parse(command_line, false);
  return {flag.value(), flag.given()};
}

TEST(UnitBoolFlag, AbsentGivesTheDefault) {
  for (const bool default_value : {false, true}) {
    const Parsed p = parse_flag("", default_value);
    EXPECT_EQ(p.value, default_value);
    EXPECT_FALSE(p.given);
  }
}

TEST(UnitBoolFlag, BareFlagIsTrue) {
  const Parsed p = parse_flag("--do_sample", false);
  EXPECT_TRUE(p.value);
  EXPECT_TRUE(p.given);
  // A bare flag does not swallow the option after it.
  EXPECT_TRUE(parse_flag("--do_sample --temperature 0.9", false).value);
}

TEST(UnitBoolFlag, TrueAndFalseSpellings) {
  for (const char* spelling : {"true", "True", "TRUE", "1", "yes", "Yes", "on"}) {
    for (const std::string form : {"--do_sample ", "--do_sample=", "--do-sample "}) {
      const Parsed p = parse_flag(form + spelling, false);
      EXPECT_TRUE(p.value) << form << spelling;
      EXPECT_TRUE(p.given) << form << spelling;
    }
  }
  for (const char* spelling : {"false", "False", "FALSE", "0", "no", "No", "off"}) {
    for (const std::string form : {"--do_sample ", "--do_sample=", "--do-sample "}) {
      const Parsed p = parse_flag(form + spelling, true);
      EXPECT_FALSE(p.value) << form << spelling;
      EXPECT_TRUE(p.given) << form << spelling;
    }
  }
}

TEST(UnitBoolFlag, AnythingElseIsAUsageErrorNamingFlagAndValue) {
  for (const char* bad : {"maybe", "2", "tru", "yes!", "-1"}) {
    try {
      parse_flag(std::string("--do_sample=") + bad, false);
      ADD_FAILURE() << bad << " was taken as a boolean";
    } catch (const UsageError& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("--do_sample"), std::string::npos) << message;
      EXPECT_NE(message.find(std::string("'") + bad + "'"), std::string::npos) << message;
      EXPECT_EQ(e.exit_code(), 2);
    }
  }
}

TEST(UnitBoolFlag, HelpShowsTheDefault) {
  for (const bool default_value : {false, true}) {
    CLI::App app("unit");
    BoolFlag flag(app, "--frame_reuse", default_value, "Reuse frames");
    const std::string help = app.help();
    EXPECT_NE(help.find(default_value ? "[default: True]" : "[default: False]"), std::string::npos) << help;
  }
}

}  // namespace
}  // namespace drivevqa
