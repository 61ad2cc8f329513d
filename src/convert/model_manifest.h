// What a converted model folder was made from, and a cheap check that its files are still those.
//
// `convert --out` and the conversion cache write drivevqa-manifest.json beside model.gguf and
// mmproj.gguf: the source's label and fingerprint, the weight type, the quantization, the drivevqa
// version, and per file its size and a hash of its first and last MiB. A folder with a manifest
// whose files do not match it (a file replaced, truncated, or one of a pair from another
// conversion) is refused (ModelError naming the file). What is not checked: bytes between the
// first and last MiB; a folder without a manifest (made by hand or by llama.cpp) is used as it is.
#pragma once

#include <filesystem>
#include <string>

namespace drivevqa {

inline constexpr char kModelManifestName[] = "drivevqa-manifest.json";

struct ModelManifest {
  std::string source;              // where the weights came from (a label: the folder's path)
  std::string source_fingerprint;  // content_key of the source (convert/content_key.h)
  std::string outtype;             // weight type of the conversion
  std::string quantization;        // empty: not quantized
};

// Writes `dir`/drivevqa-manifest.json describing dir's model.gguf and mmproj.gguf as they are now.
void write_model_manifest(const std::filesystem::path& dir, const ModelManifest& manifest);

// When `dir` has a manifest: throws ModelError naming the first file that does not match it (or a
// manifest that cannot be read). Without one: does nothing.
void check_model_manifest(const std::filesystem::path& dir);

}  // namespace drivevqa
