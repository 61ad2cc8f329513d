// Where a model comes from: a folder with model.gguf + mmproj.gguf is used as it is; a Hugging Face
// model folder, or a Hugging Face cache root (snapshots/<rev>/, newest wins), is converted once
// into a cache folder keyed by a fingerprint of its files and the conversion type.
//
// What must hold: a cache entry is used only if it was completed (conversion writes a temporary
// folder and renames it into place), so a killed conversion is never mistaken for a finished one.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

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

std::filesystem::path cache_root(const ModelSourceOptions& options);

// A cache entry cache/key made once by `build` (which fills the folder it is given). The entry is
// trusted only when complete: it is built in a temporary folder and renamed into place.
std::filesystem::path build_cached(const std::filesystem::path& cache, const std::string& key, const std::string& what,
                                   const std::function<void(const std::filesystem::path&)>& build);

// Names, sizes and modification times of the files (and of the files in the folders) given, plus
// `settings`: the cache key of anything converted from them. Contents are not hashed.
std::string files_fingerprint(const std::vector<std::filesystem::path>& paths, const std::string& settings);

}  // namespace drivevqa
