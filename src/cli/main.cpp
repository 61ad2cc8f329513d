// drivevqa: answers driving questions about six-camera scenes with Qwen2.5-VL models.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <map>

#include "cli/commands.h"
#include "util/error.h"

int main(int argc, char** argv) {
  // A file-size limit (ulimit -f) must give a worded "cannot write" error, not kill the process.
  std::signal(SIGXFSZ, SIG_IGN);
  using namespace drivevqa;
  auto logger = spdlog::stderr_color_st("drivevqa");
  logger->set_pattern("%^%l%$: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::info);

  CLI::App app{"drivevqa: answers driving questions about six-camera scenes with Qwen2.5-VL models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "drivevqa 0.1.0");
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Log details, engine messages included");
  std::map<CLI::App*, CommandAction> actions;
  const auto add = [&](CommandAction (*adder)(CLI::App&)) {
    const size_t before = app.get_subcommands({}).size();
    CommandAction action = adder(app);
    actions[app.get_subcommands({})[before]] = std::move(action);
  };
  add(add_run_command);
  add(add_merge_command);
  add(add_serve_command);
  add(add_route_command);
  add(add_kb_command);
  add(add_prompts_command);
  add(add_eval_command);
  add(add_ask_command);
  add(add_make_model_command);
  add(add_make_demo_command);
  add(add_convert_command);
  add(add_convert_lora_command);
  add(add_make_lora_command);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : static_cast<int>(ExitCode::kUsage);
  }
  if (verbose) spdlog::set_level(spdlog::level::trace);
  try {
    for (CLI::App* sub : app.get_subcommands()) actions.at(sub)();
  } catch (const Error& e) {
    std::fprintf(stderr, "drivevqa: error: %s\n", e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "drivevqa: error: %s\n", e.what());
    return static_cast<int>(ExitCode::kFailure);
  }
  return 0;
}
