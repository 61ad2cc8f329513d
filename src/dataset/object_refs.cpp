#include "dataset/object_refs.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace drivevqa {
namespace {

// A number as the converter writes it ("1088.3", "0.52", "-3"); false unless the whole field is one.
bool parse_number(std::string_view field, double& out) {
  if (field.empty() || field.size() > 32) return false;
  const char* end = field.data() + field.size();
  const auto [ptr, ec] = std::from_chars(field.data(), end, out);
  return ec == std::errc() && ptr == end && std::isfinite(out);
}

bool is_camera_name(std::string_view s) {
  return !s.empty() && s.size() <= 32 &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; });
}

// The fields between '<' and '>' split at commas; a reference has exactly four.
bool parse_ref(std::string_view body, ObjectRef& ref) {
  std::vector<std::string_view> fields;
  for (size_t start = 0;;) {
    const size_t comma = body.find(',', start);
    fields.push_back(body.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (comma == std::string_view::npos || fields.size() > 4) break;
    start = comma + 1;
  }
  if (fields.size() != 4) return false;
  const std::string_view label = fields[0];
  if (label.size() < 2 || label.size() > 4 || label[0] != 'c') return false;
  const auto [ptr, ec] = std::from_chars(label.data() + 1, label.data() + label.size(), ref.number);
  if (ec != std::errc() || ptr != label.data() + label.size() || ref.number < 0) return false;
  if (!is_camera_name(fields[1]) || !parse_number(fields[2], ref.x) || !parse_number(fields[3], ref.y)) return false;
  ref.label = std::string(label);
  ref.camera = std::string(fields[1]);
  return true;
}

}  // namespace

std::vector<ObjectRef> object_refs(std::string_view question) {
  std::vector<ObjectRef> refs;
  for (size_t open = question.find('<'); open != std::string_view::npos; open = question.find('<', open + 1)) {
    const size_t close = question.find('>', open + 1);
    if (close == std::string_view::npos) break;
    ObjectRef ref;
    if (!parse_ref(question.substr(open + 1, close - open - 1), ref)) continue;
    const bool seen = std::any_of(refs.begin(), refs.end(), [&](const ObjectRef& r) { return r.label == ref.label; });
    if (!seen) refs.push_back(std::move(ref));
  }
  return refs;
}

PixelPoint point_in_image(const ObjectRef& ref, int width, int height) {
  if (ref.x >= 0 && ref.x <= 1 && ref.y >= 0 && ref.y <= 1) return {ref.x * width, ref.y * height};
  return {ref.x * width / kReferenceImageWidth, ref.y * height / kReferenceImageHeight};
}

}  // namespace drivevqa
