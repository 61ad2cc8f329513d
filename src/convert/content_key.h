// Cache keys from what a model or adapter folder holds, not from where or when it was written.
//
// The key hashes, for each regular file of each folder given (and each file given), its name
// within the folder and size, and:
//   - safetensors files: the whole header (tensor names, dtypes, shapes, data offsets);
//   - weight files (.safetensors, .gguf, .bin, ...) over 8 MB: 8 evenly spaced 1 MB blocks, the
//     first and last included; smaller ones whole;
//   - every other file (config.json, tokenizer files, adapter_config.json, ...) whole, up to 64 MB.
// Paths do not enter the hash: the same folder spelled relative, absolute, with a trailing slash,
// with dot components or through a symlink gives one key; modification times do not either.
//
// Residual risk: a change only inside the unsampled bytes of a weight file over 8 MB (same size,
// same header, sampled blocks unchanged) is not seen, and the old conversion is reused. Replacing
// a checkpoint by another one changes nearly every block, so real swaps are seen.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace drivevqa {

// 16 hex digits over the content of `paths` (folders: their regular files, not recursive;
// symlinks followed) and `settings` (conversion type, converter version). Unreadable files enter
// as their name and error, so a key is always made; the conversion then reports them.
std::string content_key(const std::vector<std::filesystem::path>& paths, const std::string& settings);

// The file name of `path`'s canonical real path, to put before a key so entries can be told apart
// by eye: the same for every spelling of the folder ("hf", "hf/", "./x/../hf", a symlink to it).
std::string content_label(const std::filesystem::path& path);

}  // namespace drivevqa
