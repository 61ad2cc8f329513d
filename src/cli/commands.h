// The drivevqa subcommands. Each add_* registers its options on `app` and returns the action that
// runs it after parsing; actions report failure by throwing drivevqa::Error.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace drivevqa {

using CommandAction = std::function<void()>;

CommandAction add_ask_command(CLI::App& app);
CommandAction add_make_model_command(CLI::App& app);
CommandAction add_make_demo_command(CLI::App& app);
CommandAction add_convert_command(CLI::App& app);
CommandAction add_convert_lora_command(CLI::App& app);
CommandAction add_make_lora_command(CLI::App& app);
CommandAction add_run_command(CLI::App& app);
CommandAction add_route_command(CLI::App& app);
CommandAction add_kb_command(CLI::App& app);
CommandAction add_prompts_command(CLI::App& app);
CommandAction add_eval_command(CLI::App& app);
CommandAction add_merge_command(CLI::App& app);
CommandAction add_serve_command(CLI::App& app);

}  // namespace drivevqa
