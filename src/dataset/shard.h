// Which items one process of a sharded run answers (`run --shard K/N`).
//
// A run split over N processes (a Slurm array, a Kubernetes Indexed Job, N shells) gives each the
// same question file and its own shard index K in 0..N-1. Shard K answers the items whose frame
// falls in it by a stable hash of the frame's identity, so:
//   - every item belongs to exactly one shard, whatever machine or build computes it;
//   - a frame is never split: its questions keep sharing their images' work, and are decoded in
//     the same batches as in the unsharded run, so the merged results equal that run's;
//   - the assignment does not depend on --limit or on which items a journal already holds, so a
//     shard resumes on its own.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "dataset/question_file.h"

namespace drivevqa {

struct ShardSpec {
  size_t index = 0;  // 0..count-1
  size_t count = 1;
  std::string text() const { return std::to_string(index) + "/" + std::to_string(count); }
};

// Reads environment variables (a parameter so that tests can give their own).
using EnvironmentLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvironmentLookup process_environment();

// `--shard` as given: "K/N" (0 <= K < N), or "auto": from Slurm (SLURM_ARRAY_TASK_ID, _MIN, _STEP,
// _COUNT) or, without it, Kubernetes (JOB_COMPLETION_INDEX) with `num_shards` (> 0) as N. "" with
// num_shards 0: no sharding (nullopt). Throws UsageError naming the flag or variable that is wrong.
std::optional<ShardSpec> resolve_shard(const std::string& flag, size_t num_shards, const EnvironmentLookup& env);

// The frame an item's shard is chosen by: its frame_token, or else its img_paths as the question
// file writes them (else its image files).
std::string shard_frame_identity(const QuestionItem& item);

// The shard of `item` among `count`: util/text.h's fnv1a64 of shard_frame_identity, modulo count.
size_t shard_of(const QuestionItem& item, size_t count);

// The items of `items` in shard `spec`, in their order.
std::vector<QuestionItem> items_in_shard(std::vector<QuestionItem> items, const ShardSpec& spec);

}  // namespace drivevqa
