#include "dataset/shard.h"

#include <charconv>
#include <cstdint>
#include <cstdlib>

#include "util/error.h"
#include "util/text.h"

namespace drivevqa {
namespace {

// More shards than any cluster runs; a larger N is a typo.
constexpr size_t kMaxShards = 1'000'000;

// A whole decimal number without sign or spaces.
std::optional<size_t> parse_count(const std::string& text) {
  size_t value = 0;
  const char* end = text.data() + text.size();
  const auto [at, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || at != end) return std::nullopt;
  return value;
}

size_t required_number(const EnvironmentLookup& env, const std::string& name, const std::string& context) {
  const std::optional<std::string> value = env(name);
  if (!value) throw UsageError(context + ": " + name + " is not set");
  const std::optional<size_t> n = parse_count(*value);
  if (!n) throw UsageError(context + ": " + name + "='" + *value + "' is not a whole number");
  return *n;
}

ShardSpec checked(size_t index, size_t count, const std::string& context) {
  if (count == 0 || count > kMaxShards) {
    throw UsageError(context + ": the number of shards must be 1.." + std::to_string(kMaxShards) + ", not " + std::to_string(count));
  }
  if (index >= count) {
    throw UsageError(context + ": shard " + std::to_string(index) + " of " + std::to_string(count) +
                     " does not exist (shards are numbered 0.." + std::to_string(count - 1) + ")");
  }
  return {index, count};
}

// A Slurm array task: its place among the array's tasks (ids may start above 0 and step, e.g. --array=1-8:2).
ShardSpec slurm_shard(const EnvironmentLookup& env) {
  const std::string context = "--shard auto (Slurm array)";
  const size_t id = required_number(env, "SLURM_ARRAY_TASK_ID", context);
  const size_t count = required_number(env, "SLURM_ARRAY_TASK_COUNT", context);
  const size_t min = env("SLURM_ARRAY_TASK_MIN") ? required_number(env, "SLURM_ARRAY_TASK_MIN", context) : 0;
  const size_t step = env("SLURM_ARRAY_TASK_STEP") ? required_number(env, "SLURM_ARRAY_TASK_STEP", context) : 1;
  if (step == 0 || id < min || (id - min) % step != 0) {
    throw UsageError(context + ": task " + std::to_string(id) + " is not in an array from " + std::to_string(min) + " in steps of " +
                     std::to_string(step) + " (arrays with a list of ids, e.g. --array=1,4,9, cannot be sharded automatically)");
  }
  return checked((id - min) / step, count, context);
}

}  // namespace

EnvironmentLookup process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    return value ? std::optional<std::string>(value) : std::nullopt;
  };
}

std::optional<ShardSpec> resolve_shard(const std::string& flag, size_t num_shards, const EnvironmentLookup& env) {
  if (flag.empty()) {
    if (num_shards > 0) throw UsageError("--num_shards needs --shard auto (the index comes from JOB_COMPLETION_INDEX)");
    return std::nullopt;
  }
  if (flag == "auto") {
    if (env("SLURM_ARRAY_TASK_ID")) {
      if (num_shards > 0) throw UsageError("--num_shards is for Kubernetes; in a Slurm array the count is SLURM_ARRAY_TASK_COUNT");
      return slurm_shard(env);
    }
    if (env("JOB_COMPLETION_INDEX")) {
      const std::string context = "--shard auto (Kubernetes Indexed Job)";
      if (num_shards == 0) throw UsageError(context + " needs --num_shards N (the Job's completions)");
      return checked(required_number(env, "JOB_COMPLETION_INDEX", context), num_shards, context);
    }
    throw UsageError("--shard auto: neither SLURM_ARRAY_TASK_ID (a Slurm array) nor JOB_COMPLETION_INDEX (a Kubernetes "
                     "Indexed Job) is set; give the shard as --shard K/N");
  }
  if (num_shards > 0) throw UsageError("--num_shards goes with --shard auto; --shard " + flag + " says the count itself");
  const size_t slash = flag.find('/');
  const std::optional<size_t> index = slash == std::string::npos ? std::nullopt : parse_count(flag.substr(0, slash));
  const std::optional<size_t> count = slash == std::string::npos ? std::nullopt : parse_count(flag.substr(slash + 1));
  if (!index || !count) throw UsageError("--shard '" + flag + "': expected K/N (e.g. 0/4, shards numbered from 0) or auto");
  return checked(*index, *count, "--shard " + flag);
}

std::string shard_frame_identity(const QuestionItem& item) {
  if (!item.frame_token.empty()) return item.frame_token;
  // The image paths as the question file writes them, not joined with --image_base_dir: shards on
  // machines with the images in other folders still agree.
  if (item.original.is_object()) {
    if (const auto it = item.original.find("img_paths"); it != item.original.end()) return it->dump();
  }
  std::string files;
  for (const CameraImage& image : item.images) files += image.path.string() + '\n';
  return files;
}

size_t shard_of(const QuestionItem& item, size_t count) {
  return static_cast<size_t>(fnv1a64(shard_frame_identity(item)) % count);
}

std::vector<QuestionItem> items_in_shard(std::vector<QuestionItem> items, const ShardSpec& spec) {
  std::erase_if(items, [&](const QuestionItem& item) { return shard_of(item, spec.count) != spec.index; });
  return items;
}

}  // namespace drivevqa
