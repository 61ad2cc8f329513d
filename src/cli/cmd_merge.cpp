// merge: the results files of a sharded run (run --shard K/N) joined into one (results/merge.h).
#include <glob.h>
#include <spdlog/spdlog.h>

#include <set>

#include "cli/commands.h"
#include "dataset/question_file.h"
#include "results/merge.h"
#include "results/results_file.h"
#include "util/error.h"
#include "util/path_roles.h"

namespace drivevqa {
namespace {

// The files each pattern names (shell wildcards, expanded here so that a quoted pattern works in
// job scripts), sorted per pattern; a file named twice is read once.
std::vector<std::string> expand_inputs(const std::vector<std::string>& patterns) {
  std::vector<std::string> files;
  std::set<std::filesystem::path> seen;
  for (const std::string& pattern : patterns) {
    glob_t found{};
    const int rc = glob(pattern.c_str(), GLOB_ERR, nullptr, &found);
    std::vector<std::string> matched(found.gl_pathv, found.gl_pathv + found.gl_pathc);
    globfree(&found);
    if (rc == GLOB_NOMATCH || matched.empty()) throw InputError("--inputs '" + pattern + "': no file matches");
    if (rc != 0) throw InputError("--inputs '" + pattern + "': a folder on its way cannot be read");
    for (const std::string& file : matched) {
      std::error_code ec;
      const std::filesystem::path canonical = std::filesystem::weakly_canonical(file, ec);
      if (seen.insert(ec ? std::filesystem::path(file) : canonical).second) files.push_back(file);
    }
  }
  return files;
}

}  // namespace

CommandAction add_merge_command(CLI::App& app) {
  struct Args {
    std::string json_file, output_file;
    std::vector<std::string> inputs;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("merge", "Join the results files of a sharded run (run --shard K/N) into one, "
                                              "checking that every item is answered exactly once");
  cmd->add_option("--json_file,--json-file", a->json_file, "The question file every shard was given")->required();
  cmd->add_option("--inputs", a->inputs, "The shards' results files: paths or quoted wildcards, e.g. 'out/shard-*.json' "
                                         "(repeatable)")->required();
  cmd->add_option("--output_file,--output-file", a->output_file, "The merged results file (written atomically)")->required();
  return [a] {
    const std::vector<std::string> files = expand_inputs(a->inputs);
    PathRoles paths;
    paths.read("--json_file", a->json_file);
    for (const std::string& file : files) paths.read("--inputs", file);
    paths.write("--output_file", a->output_file);
    paths.check();
    DatasetOptions dataset;
    dataset.check_images = false;  // items are matched by their fields; images are not looked at
    const std::vector<QuestionItem> questions = read_question_file(a->json_file, dataset);
    std::vector<ResultsInput> inputs;
    size_t entries = 0;
    for (const std::string& file : files) {
      inputs.push_back(read_results_input(file));
      entries += inputs.back().entries.size();
    }
    spdlog::info("{} items in {}; {} answered entries in {} files", questions.size(), a->json_file, entries, files.size());
    const MergedResults merged = merge_results(questions, inputs);
    write_results(a->output_file, merged.entries);
    spdlog::info("wrote {}: {} items in the question file's order{}", a->output_file, merged.entries.size(),
                 merged.error_answers ? ", " + std::to_string(merged.error_answers) + " of them error answers" : "");
  };
}

}  // namespace drivevqa
