// Small text, hashing and JSON helpers shared by every stage.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace drivevqa {

// 64-bit FNV-1a: stable across runs and machines; for cache keys and content ids, not security.
constexpr uint64_t kFnvOffset = 1469598103934665603ull;
inline uint64_t fnv1a64(const void* data, size_t size, uint64_t h = kFnvOffset) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}
inline uint64_t fnv1a64(std::string_view s) { return fnv1a64(s.data(), s.size()); }

// 16 lower-case hex digits.
std::string hex64(uint64_t v);

std::string to_lower(std::string_view s);

// Parses JSON text; throws InputError "<name>: not valid JSON (byte N)".
// `text` with every byte that is not part of a valid UTF-8 sequence replaced by U+FFFD; `replaced`
// counts them. Outside files may hold stray Latin-1 bytes, which the JSON parser would refuse.
std::string repair_utf8(std::string_view text, size_t* replaced = nullptr);

nlohmann::json parse_json(std::string_view text, const std::string& name);
nlohmann::ordered_json parse_ordered_json(std::string_view text, const std::string& name);

// `key` of a JSON object when it is a string, else "".
template <typename Json>
std::string string_field(const Json& object, const char* key) {
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->template get<std::string>() : std::string();
}

}  // namespace drivevqa
