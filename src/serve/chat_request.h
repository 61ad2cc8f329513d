// One OpenAI chat-completions request, read and checked (serve's input edge).
//
// drivevqa answers Track 1 questions, so it reads only what that needs: the last user message's
// text parts (the question) and image_url parts (the cameras, in order), the model, and the
// generation parameters. It builds the prompt itself, as `run` does: system and earlier messages
// are not shown to the model. Everything else in the body is ignored, as OpenAI's API does with
// fields it does not know.
//
// What must hold: a request that parse_chat_request() accepts can be answered (its images are
// read and are JPEG or PNG; its numbers are in range); every refusal is an ApiError with an HTTP
// status of 4xx and a message naming the field.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace drivevqa {

// A refusal with its HTTP status and OpenAI error type (e.g. 400 invalid_request_error).
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string type, const std::string& message)
      : std::runtime_error(message), status_(status), type_(std::move(type)) {}
  int status() const { return status_; }
  const std::string& type() const { return type_; }

 private:
  int status_;
  std::string type_;
};

// The body of an error reply: {"error": {"message", "type", "code"}}.
std::string error_body(const std::string& message, const std::string& type);

struct RequestLimits {
  size_t max_images = 6;                   // image parts per request
  int max_tokens = 1024;                   // most tokens a request may ask for
  std::filesystem::path allowed_media_dir; // file:// images only under it; empty: file:// refused
};

// An image part's bytes and where they came from (for messages).
struct RequestImage {
  std::vector<uint8_t> bytes;
  std::string source;  // "image 2 (data: URI)" or "image 2 (file:///...)"
};

struct ChatRequest {
  std::string model;        // as given: drivevqa, drivevqa-7b or drivevqa-72b (checked by the server)
  std::string question;     // the last user message's text parts, joined by newlines
  std::string category;     // optional extension: the Track 1 category, for routing as `run` does
  std::vector<RequestImage> images;
  std::optional<int> max_tokens;
  std::optional<float> temperature;  // unset or 0: greedy
  std::optional<float> top_p;
  std::optional<uint32_t> seed;
  std::vector<std::string> stop;     // up to 4 strings, as OpenAI allows
  bool stream = false;
  bool include_usage = false;        // stream_options.include_usage: a last chunk with usage
};

// Reads `body` (JSON) into a request. Images: data: URIs of JPEG or PNG (base64), or file:// URLs
// of files under limits.allowed_media_dir (the resolved path, links followed, must be inside it).
// Nothing is fetched from the network. Every image must decode whole, except those `known_image`
// says were accepted before (the server's media store: the same bytes decoded then, so they are not
// decoded again for each request about the frame); it is called once per image part, in order.
// Throws ApiError: 400, or 403 for a file:// path that is not a file under the folder (missing or
// outside are not told apart).
using KnownImage = std::function<bool(const std::vector<uint8_t>& bytes)>;
ChatRequest parse_chat_request(const std::string& body, const RequestLimits& limits, const KnownImage& known_image = {});

// Standard base64 (RFC 4648, padding optional, no line breaks); nullopt when `text` is not.
std::optional<std::vector<uint8_t>> decode_base64(std::string_view text);
// The same alphabet, padded: what clients put in data: URIs (benchmarks and tests send them).
std::string encode_base64(const std::vector<uint8_t>& bytes);

}  // namespace drivevqa
