// Where a model comes from: a folder with model.gguf + mmproj.gguf is used as it is (checked against
// its drivevqa-manifest.json when it has one); a Hugging Face model folder, or a Hugging Face cache
// root (the snapshot refs/main names, else the newest complete one, with a warning), is converted
// once into a cache folder keyed by a fingerprint of its files and the conversion type.
//
// What must hold: a cache entry is used only if it was completed, and concurrent runs share one
// entry (util/cache_publish.h), so a killed conversion is never mistaken for a finished one.
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
// The folder of drivevqa's other caches (the KB index): cache_root()'s parent, the same for every
// spelling of --cache_dir (relative or absolute, a trailing slash, dot components).
std::filesystem::path cache_home(const ModelSourceOptions& options);

// A cache entry cache/key made once by `build` (which fills the folder it is given); concurrent
// callers wait for the first and reuse its entry (publish_cached_folder in util/cache_publish.h).
std::filesystem::path build_cached(const std::filesystem::path& cache, const std::string& key, const std::string& what,
                                   const std::function<void(const std::filesystem::path&)>& build);

}  // namespace drivevqa
