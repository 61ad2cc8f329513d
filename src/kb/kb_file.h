// The seed's knowledge base file (shared/docs/track1.md §5): {"annotations": [...]} or a bare list
// of human-annotated questions. The answer is user_annotations.user_annotation when present, else
// answer. Entries without a question are skipped and counted.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace drivevqa {

struct KbEntry {
  std::string scene_token;
  std::string frame_token;
  std::string question;
  std::string answer;
  std::string category;
};

struct KbFile {
  std::vector<KbEntry> entries;
  size_t skipped = 0;        // entries without a question (or not objects)
  std::string content_hash;  // of the file's bytes: the index is keyed by it
};

// Throws InputError naming the file when it is missing, not JSON, or of the wrong shape.
KbFile read_kb_file(const std::filesystem::path& path);
KbFile parse_kb(const std::string& text, const std::string& name);

// Whitespace runs folded to one space, ends trimmed: the exact-match key's question part.
std::string normalise_question(std::string_view question);

// Object references <cN,CAM_X,x,y> replaced by their camera name, as the seed does before
// tokenising ("<c1,CAM_FRONT,812.4,540.0>" -> "CAM_FRONT").
std::string replace_object_refs(std::string_view text);

// Lower-cased runs of letters and digits (the tokens retrieval ranks on).
std::vector<std::string> kb_tokens(std::string_view text);

}  // namespace drivevqa
