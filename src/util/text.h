// Small text, hashing and JSON helpers shared by every stage.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <string_view>

namespace drivevqa {

// 64-bit FNV-1a: stable across runs and machines; for cache keys, content ids and shard choice,
// not security. Its offset basis lacks the standard one's last digit (14695981039346656037); it
// stays as it is, since cache entries, journal keys and shard assignments depend on its values.
constexpr uint64_t kFnvOffset = 1469598103934665603ull;
inline uint64_t fnv1a64(const void* data, size_t size, uint64_t h = kFnvOffset) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}
inline uint64_t fnv1a64(std::string_view s) { return fnv1a64(s.data(), s.size()); }

// 16 lower-case hex digits.
std::string hex64(uint64_t v);

// Content id of bytes: FNV-1a as hex64, a dash, the size ("0123...cdef-42").
std::string fingerprint(const void* data, size_t size);
inline std::string fingerprint(const std::string& text) { return fingerprint(text.data(), text.size()); }

std::string to_lower(std::string_view s);

// `s` without leading and trailing white space (ASCII isspace).
std::string_view trim_spaces(std::string_view s);

// Every run of white space as one space, none at either end.
std::string fold_spaces(std::string_view s);

// `text` with every byte that is not part of a valid UTF-8 sequence replaced by U+FFFD; `replaced`
// counts them. Outside files may hold stray Latin-1 bytes, which the JSON parser would refuse.
std::string repair_utf8(std::string_view text, size_t* replaced = nullptr);

// A JSON number as T, or nothing when it does not fit: integral T takes only integers within T's
// range, floating T only finite values within its range. (nlohmann's get<T>() converts with a
// plain cast, which is undefined behaviour out of range: found by fuzzing.)
template <typename T, typename Json>
std::optional<T> json_number(const Json& v) {
  static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>);
  if constexpr (std::is_integral_v<T>) {
    if (v.is_number_unsigned()) {
      const auto u = v.template get<uint64_t>();
      if (u <= static_cast<uint64_t>(std::numeric_limits<T>::max())) return static_cast<T>(u);
    } else if (v.is_number_integer()) {
      const auto i = v.template get<int64_t>();
      if (std::is_signed_v<T> ? (i >= static_cast<int64_t>(std::numeric_limits<T>::lowest()) &&
                                 i <= static_cast<int64_t>(std::numeric_limits<T>::max()))
                              : (i >= 0 && static_cast<uint64_t>(i) <= static_cast<uint64_t>(std::numeric_limits<T>::max()))) {
        return static_cast<T>(i);
      }
    }
    return std::nullopt;
  } else {
    if (!v.is_number()) return std::nullopt;
    const double d = v.template get<double>();
    if (!std::isfinite(d) || std::fabs(d) > static_cast<double>(std::numeric_limits<T>::max())) return std::nullopt;
    return static_cast<T>(d);
  }
}

// The deepest nesting of arrays and objects accepted in JSON from outside (Track 1 files nest 6
// levels). nlohmann parses any depth, but dump(), copies and comparisons recurse once per level: a
// 100,000-deep value overflows the stack. (Its destructor is iterative in 3.11.)
inline constexpr int kMaxJsonDepth = 64;

// Where `text` opens its (max_depth + 1)-th nested array or object, as a byte position counted from
// 1 (like nlohmann's parse errors); 0 when it never does. Brackets inside string literals (escapes
// included) do not count. One linear pass without recursion; `text` need not be valid JSON.
size_t json_too_deep_at(std::string_view text, int max_depth = kMaxJsonDepth);

// Parse JSON text from outside. Throw InputError "<name>: not valid JSON (byte N)", or
// "<name>: JSON nested deeper than 64 levels at byte N" before parsing anything too deep.
nlohmann::json parse_json(std::string_view text, const std::string& name);
nlohmann::ordered_json parse_ordered_json(std::string_view text, const std::string& name);
// The same checks without throwing, for text where a bad value is expected and skipped (a damaged
// journal line, a server reply): nothing when `text` is not valid JSON or nests too deep.
std::optional<nlohmann::json> try_parse_json(std::string_view text);

// `key` of a JSON object when it is a string, else "".
template <typename Json>
std::string string_field(const Json& object, const char* key) {
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->template get<std::string>() : std::string();
}

}  // namespace drivevqa
