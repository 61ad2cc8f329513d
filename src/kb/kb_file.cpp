#include "kb/kb_file.h"

#include <nlohmann/json.hpp>

#include <cctype>

#include "util/error.h"
#include "util/files.h"
#include "util/text.h"

namespace drivevqa {
namespace {

using Json = nlohmann::json;

}  // namespace

std::string normalise_question(std::string_view q) { return fold_spaces(q); }

std::string replace_object_refs(std::string_view text) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '<' && i + 2 < text.size() && (text[i + 1] == 'c' || text[i + 1] == 'C') &&
        std::isdigit(static_cast<unsigned char>(text[i + 2]))) {
      const size_t close = text.find('>', i);
      const size_t first_comma = text.find(',', i);
      if (close != std::string_view::npos && first_comma != std::string_view::npos && first_comma < close) {
        const size_t second_comma = text.find(',', first_comma + 1);
        const size_t end = second_comma != std::string_view::npos && second_comma < close ? second_comma : close;
        out += text.substr(first_comma + 1, end - first_comma - 1);
        i = close + 1;
        continue;
      }
    }
    out += text[i++];
  }
  return out;
}

std::vector<std::string> kb_tokens(std::string_view text) {
  std::vector<std::string> tokens;
  std::string cur;
  for (char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || u >= 0x80) {
      cur += static_cast<char>(std::tolower(u));
    } else if (!cur.empty()) {
      tokens.push_back(std::move(cur));
      cur.clear();
    }
  }
  if (!cur.empty()) tokens.push_back(std::move(cur));
  return tokens;
}

KbFile parse_kb(const std::string& text, const std::string& name) {
  const Json root = parse_json(text, name);
  const Json* list = &root;
  if (root.is_object()) {
    const auto it = root.find("annotations");
    if (it == root.end() || !it->is_array()) throw InputError(name + ": expected {\"annotations\": [...]} or a list");
    list = &*it;
  } else if (!root.is_array()) {
    throw InputError(name + ": expected {\"annotations\": [...]} or a list, found a " + root.type_name());
  }
  KbFile kb;
  kb.content_hash = fingerprint(text);
  for (const Json& item : *list) {
    if (!item.is_object()) {
      ++kb.skipped;
      continue;
    }
    KbEntry e;
    e.question = string_field(item, "question");
    if (normalise_question(e.question).empty()) {
      ++kb.skipped;
      continue;
    }
    e.answer = string_field(item, "answer");
    if (const auto u = item.find("user_annotations"); u != item.end() && u->is_object()) {
      const std::string annotated = string_field(*u, "user_annotation");
      if (!annotated.empty()) e.answer = annotated;
    }
    e.scene_token = string_field(item, "scene_token");
    e.frame_token = string_field(item, "frame_token");
    e.category = string_field(item, "category");
    kb.entries.push_back(std::move(e));
  }
  return kb;
}

KbFile read_kb_file(const std::filesystem::path& path) {
  const auto bytes = read_file_bytes(path);
  return parse_kb(std::string(bytes.begin(), bytes.end()), path.string());
}

}  // namespace drivevqa
