// placeholder
#include "cli/commands.h"
namespace drivevqa {
CommandAction add_eval_command(CLI::App& app) { app.add_subcommand("eval", "Score a results file (not built yet)"); return [] {}; }
}
