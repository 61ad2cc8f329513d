#include "serve/chat_request.h"

#include <nlohmann/json.hpp>

#include <cmath>

#include "engine/image.h"
#include "util/error.h"
#include "util/files.h"
#include "util/text.h"

namespace drivevqa {
namespace {

using Json = nlohmann::json;

[[noreturn]] void refuse(const std::string& message) { throw ApiError(400, "invalid_request_error", message); }

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// "%2F" and the like in a file:// URL's path.
std::string percent_decoded(const std::string& text, const std::string& what) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size() || !std::isxdigit(static_cast<unsigned char>(text[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      refuse(what + ": a '%' in the URL is not followed by two hex digits");
    }
    out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
    i += 2;
  }
  if (out.find('\0') != std::string::npos) refuse(what + ": the path holds a NUL byte");
  return out;
}

// Whether `path` lies inside `folder` (both absolute and resolved), component by component.
bool inside(const std::filesystem::path& path, const std::filesystem::path& folder) {
  auto p = path.begin();
  for (auto f = folder.begin(); f != folder.end(); ++f, ++p) {
    if (f->empty()) continue;  // a trailing separator
    if (p == path.end() || *p != *f) return false;
  }
  return p != path.end();
}

std::vector<uint8_t> data_uri_bytes(const std::string& url, const std::string& what) {
  const size_t comma = url.find(',');
  if (comma == std::string::npos) refuse(what + ": a data: URI without a comma");
  const std::string header = to_lower(url.substr(5, comma - 5));  // after "data:"
  if (!header.ends_with(";base64")) refuse(what + ": only base64 data: URIs are read");
  const std::string mime = header.substr(0, header.size() - 7);
  if (mime != "image/jpeg" && mime != "image/jpg" && mime != "image/png") {
    refuse(what + ": a data: URI of type '" + mime + "'; images must be image/jpeg or image/png");
  }
  auto bytes = decode_base64(std::string_view(url).substr(comma + 1));
  if (!bytes) refuse(what + ": the data: URI is not valid base64");
  return std::move(*bytes);
}

std::vector<uint8_t> file_url_bytes(const std::string& url, const std::string& what, const RequestLimits& limits) {
  if (limits.allowed_media_dir.empty()) refuse(what + ": file:// images are off (the server was started without --allowed_media_dir)");
  std::string rest = url.substr(7);  // after "file://"
  if (rest.starts_with("localhost/")) rest = rest.substr(9);
  if (!rest.starts_with("/")) refuse(what + ": a file:// URL must name an absolute path (file:///...)");
  const std::filesystem::path given = percent_decoded(rest, what);
  std::error_code ec;
  const std::filesystem::path resolved = std::filesystem::canonical(given, ec);
  const std::filesystem::path folder = std::filesystem::canonical(limits.allowed_media_dir, ec);
  if (ec || resolved.empty() || !inside(resolved, folder)) {
    // The same answer for a missing file and one outside: nothing is said about what exists there.
    throw ApiError(403, "permission_error", what + ": not a file under the server's allowed media folder");
  }
  if (!std::filesystem::is_regular_file(resolved, ec)) throw ApiError(403, "permission_error", what + ": not a regular file");
  try {
    return read_file_bytes(resolved, {kMaxImageFileBytes});
  } catch (const Error& e) {
    refuse(what + ": " + e.what());
  }
}

RequestImage read_image_part(const Json& part, size_t number, const RequestLimits& limits, const KnownImage& known_image) {
  const Json* url = nullptr;
  if (const auto it = part.find("image_url"); it != part.end()) {
    url = it->is_object() && it->contains("url") ? &(*it)["url"] : &*it;
  }
  const std::string what = "image " + std::to_string(number);
  if (!url || !url->is_string()) refuse(what + ": image_url must be a string or an object with a string url");
  const std::string& text = url->get_ref<const std::string&>();
  RequestImage image;
  if (text.starts_with("data:")) {
    image.source = what + " (data: URI)";
    image.bytes = data_uri_bytes(text, what);
  } else if (text.starts_with("file://")) {
    image.source = what + " (" + text.substr(0, 200) + ")";
    image.bytes = file_url_bytes(text, what, limits);
  } else {
    refuse(what + ": only data: URIs and file:// URLs are read; nothing is fetched from the network");
  }
  if (known_image && known_image(image.bytes)) return image;
  try {
    decode_image(image.bytes.data(), image.bytes.size(), image.source);  // JPEG or PNG that decodes whole
  } catch (const Error& e) {
    refuse(e.what());
  } catch (const std::bad_alloc&) {
    refuse(image.source + ": too large to decode");
  }
  return image;
}

// The last user message: its text parts (the question) and image parts, in order.
void read_user_message(const Json& messages, ChatRequest& request, const RequestLimits& limits,
                       const KnownImage& known_image) {
  if (!messages.is_array() || messages.empty()) refuse("messages must be a non-empty list");
  const Json* user = nullptr;
  for (const Json& m : messages) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) refuse("every message needs a string role");
    if (m["role"] == "user") user = &m;
  }
  if (!user) refuse("messages hold no user message (the question)");
  const Json& content = user->contains("content") ? (*user)["content"] : Json();
  std::vector<std::string> texts;
  if (content.is_string()) {
    texts.push_back(content.get<std::string>());
  } else if (content.is_array()) {
    for (const Json& part : content) {
      const std::string type = part.is_object() ? string_field(part, "type") : "";
      if (type == "text") {
        if (!part.contains("text") || !part["text"].is_string()) refuse("a text part needs a string text");
        texts.push_back(part["text"].get<std::string>());
      } else if (type == "image_url") {
        if (request.images.size() >= limits.max_images) {
          refuse("more than " + std::to_string(limits.max_images) + " images in one request (this server's limit)");
        }
        request.images.push_back(read_image_part(part, request.images.size() + 1, limits, known_image));
      } else {
        refuse("a content part of type '" + type + "'; text and image_url are read");
      }
    }
  } else {
    refuse("the user message's content must be a string or a list of parts");
  }
  for (const std::string& t : texts) request.question += (request.question.empty() ? "" : "\n") + t;
  if (trim_spaces(request.question).empty()) refuse("the user message has no text (the question)");
  if (request.images.empty()) refuse("the user message has no image_url part: drivevqa answers questions about camera images");
}

template <typename T>
std::optional<T> number_field(const Json& body, const char* name, double low, double high) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) refuse(std::string(name) + " must be a number");
  const double v = it->get<double>();
  if (!std::isfinite(v) || v < low || v > high) {
    refuse(std::string(name) + " must be within " + std::to_string(low) + ".." + std::to_string(high));
  }
  if (std::is_integral_v<T> && v != std::floor(v)) refuse(std::string(name) + " must be a whole number");
  return static_cast<T>(v);
}

}  // namespace

std::string error_body(const std::string& message, const std::string& type) {
  return Json{{"error", {{"message", message}, {"type", type}, {"code", nullptr}}}}.dump(
      -1, ' ', false, Json::error_handler_t::replace);
}

std::optional<std::vector<uint8_t>> decode_base64(std::string_view text) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) return std::nullopt;
  std::vector<uint8_t> out;
  out.reserve(text.size() * 3 / 4);
  uint32_t bits = 0;
  int held = 0;
  for (const char c : text) {
    const int v = base64_value(c);
    if (v < 0) return std::nullopt;
    bits = (bits << 6) | static_cast<uint32_t>(v);
    held += 6;
    if (held >= 8) {
      held -= 8;
      out.push_back(static_cast<uint8_t>(bits >> held));
    }
  }
  return out;
}

std::string encode_base64(const std::vector<uint8_t>& bytes) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const uint32_t n = (uint32_t{bytes[i]} << 16) | (i + 1 < bytes.size() ? uint32_t{bytes[i + 1]} << 8 : 0) |
                       (i + 2 < bytes.size() ? uint32_t{bytes[i + 2]} : 0);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kAlphabet[n & 63] : '=';
  }
  return out;
}

ChatRequest parse_chat_request(const std::string& body, const RequestLimits& limits, const KnownImage& known_image) {
  Json j;
  try {
    j = parse_json(body, "the request body");
  } catch (const Error& e) {
    refuse(e.what());
  }
  if (!j.is_object()) refuse("the request body must be a JSON object");
  ChatRequest request;
  if (!j.contains("model") || !j["model"].is_string()) refuse("model must be a string (drivevqa, drivevqa-7b or drivevqa-72b)");
  request.model = j["model"].get<std::string>();
  if (j.contains("category") && j["category"].is_string()) request.category = to_lower(j["category"].get<std::string>());
  if (const auto n = number_field<int>(j, "n", 1, 1e9); n && *n != 1) refuse("n must be 1: one answer per request");
  request.max_tokens = number_field<int>(j, "max_completion_tokens", 1, 1e9);
  if (!request.max_tokens) request.max_tokens = number_field<int>(j, "max_tokens", 1, 1e9);
  if (request.max_tokens && *request.max_tokens > limits.max_tokens) {
    refuse("max_tokens " + std::to_string(*request.max_tokens) + " is above this server's limit of " + std::to_string(limits.max_tokens));
  }
  request.temperature = number_field<float>(j, "temperature", 0, 2);
  request.top_p = number_field<float>(j, "top_p", 0, 1);
  request.seed = number_field<uint32_t>(j, "seed", 0, 4294967295.0);
  if (const auto it = j.find("stop"); it != j.end() && !it->is_null()) {
    if (it->is_string()) {
      request.stop.push_back(it->get<std::string>());
    } else if (it->is_array() && it->size() <= 4) {
      for (const Json& s : *it) {
        if (!s.is_string()) refuse("stop must be a string or a list of up to 4 strings");
        request.stop.push_back(s.get<std::string>());
      }
    } else {
      refuse("stop must be a string or a list of up to 4 strings");
    }
    std::erase(request.stop, std::string());
  }
  if (const auto it = j.find("stream"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) refuse("stream must be true or false");
    request.stream = it->get<bool>();
  }
  if (const auto it = j.find("stream_options"); it != j.end() && it->is_object()) {
    const auto usage = it->find("include_usage");
    request.include_usage = usage != it->end() && usage->is_boolean() && usage->get<bool>();
  }
  read_user_message(j.contains("messages") ? j["messages"] : Json(), request, limits, known_image);
  return request;
}

}  // namespace drivevqa
