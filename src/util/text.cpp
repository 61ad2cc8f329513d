#include "util/text.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "util/error.h"

namespace drivevqa {
namespace {

template <typename Json>
Json parse_as(std::string_view text, const std::string& name) {
  if (const size_t at = json_too_deep_at(text)) {
    throw InputError(name + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels at byte " +
                     std::to_string(at));
  }
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    throw InputError(name + ": not valid JSON (byte " + std::to_string(e.byte) + ")");
  } catch (const nlohmann::json::exception& e) {
    // e.g. a number too large for any type (found by fuzzing: out_of_range 406)
    throw InputError(name + ": not usable JSON (" + e.what() + ")");
  }
}

}  // namespace

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string fingerprint(const void* data, size_t size) {
  return hex64(fnv1a64(data, size)) + "-" + std::to_string(size);
}

std::string to_lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string repair_utf8(std::string_view text, size_t* replaced) {
  std::string out;
  out.reserve(text.size());
  size_t bad = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) ok = (p[i + k] & 0xC0) == 0x80;
    if (ok && len > 1) {
      // Overlong forms, surrogates and code points past U+10FFFF are not valid UTF-8 either.
      const uint32_t cp = len == 2 ? ((c & 0x1Fu) << 6) | (p[i + 1] & 0x3Fu)
                          : len == 3 ? ((c & 0x0Fu) << 12) | ((p[i + 1] & 0x3Fu) << 6) | (p[i + 2] & 0x3Fu)
                                     : ((c & 0x07u) << 18) | ((p[i + 1] & 0x3Fu) << 12) | ((p[i + 2] & 0x3Fu) << 6) | (p[i + 3] & 0x3Fu);
      ok = (len == 2 && cp >= 0x80) || (len == 3 && cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF)) ||
           (len == 4 && cp >= 0x10000 && cp <= 0x10FFFF);
    }
    if (ok) {
      out.append(text.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++bad;
      ++i;
    }
  }
  if (replaced) *replaced = bad;
  return out;
}

size_t json_too_deep_at(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;  // the escaped character neither ends the string nor counts
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return i + 1;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;  // a stray closer is the parser's error to report
    }
  }
  return 0;
}

nlohmann::json parse_json(std::string_view text, const std::string& name) { return parse_as<nlohmann::json>(text, name); }

nlohmann::ordered_json parse_ordered_json(std::string_view text, const std::string& name) {
  return parse_as<nlohmann::ordered_json>(text, name);
}

std::optional<nlohmann::json> try_parse_json(std::string_view text) {
  if (json_too_deep_at(text) != 0) return std::nullopt;
  try {
    nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
    if (j.is_discarded()) return std::nullopt;
    return j;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

std::string_view trim_spaces(std::string_view s) {
  const auto space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

std::string fold_spaces(std::string_view s) {
  std::string out;
  bool space = false;
  for (char c : s) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

}  // namespace drivevqa
