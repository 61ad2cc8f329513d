// Where a model comes from: a folder with model.gguf + mmproj.gguf is used as it is; a Hugging Face
// model folder, or a Hugging Face cache root (snapshots/<rev>/, newest wins), is converted once
// into a cache folder keyed by a fingerprint of its files and the conversion type.
//
// What must hold: a cache entry is used only if it was completed (conversion writes a temporary
// folder and renames it into place), so a killed conversion is never mistaken for a finished one.
#pragma once

#include <filesystem>

#include <ggml.h>

#include "engine/model.h"

namespace drivevqa {

struct ModelSourceOptions {
  std::filesystem::path cache_dir;           // empty: default_cache_dir()
  ggml_type outtype = GGML_TYPE_BF16;        // weight type of conversions
};

// $XDG_CACHE_HOME/drivevqa/models, else ~/.cache/drivevqa/models.
std::filesystem::path default_cache_dir();

// Throws ModelError (nothing usable there) or InputError (a broken Hugging Face folder).
ModelFiles resolve_model(const std::filesystem::path& source, const ModelSourceOptions& options);

}  // namespace drivevqa
