#include "util/text.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "util/error.h"

namespace drivevqa {
namespace {

template <typename Json>
Json parse_as(std::string_view text, const std::string& name) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    throw InputError(name + ": not valid JSON (byte " + std::to_string(e.byte) + ")");
  }
}

}  // namespace

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string to_lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

nlohmann::json parse_json(std::string_view text, const std::string& name) { return parse_as<nlohmann::json>(text, name); }

nlohmann::ordered_json parse_ordered_json(std::string_view text, const std::string& name) {
  return parse_as<nlohmann::ordered_json>(text, name);
}

}  // namespace drivevqa
