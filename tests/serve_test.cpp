// `drivevqa serve`: requests read and checked, images stored by content, and the real server
// driven by clients nobody here wrote (curl, the official OpenAI Node SDK).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <map>
#include <thread>

#include "dataset/question_file.h"
#include "pipeline/runner.h"
#include "serve/chat_request.h"
#include "serve/media_store.h"
#include "support/test_support.h"
#include "util/error.h"
#include "util/files.h"

namespace drivevqa {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;


std::string jpeg_data_uri(const fs::path& file) { return "data:image/jpeg;base64," + encode_base64(read_file_bytes(file)); }

Json image_part(const std::string& url) { return Json{{"type", "image_url"}, {"image_url", {{"url", url}}}}; }

// A chat request about `images` (data: URIs of the files, or the URLs as given).
Json chat_body(const std::string& question, const std::vector<std::string>& image_urls, const std::string& model = "drivevqa") {
  Json content = Json::array({Json{{"type", "text"}, {"text", question}}});
  for (const std::string& url : image_urls) content.push_back(image_part(url));
  return Json{{"model", model}, {"messages", Json::array({Json{{"role", "user"}, {"content", content}}})}};
}

// The HTTP status parse_chat_request gives `text` (200: accepted).
int status_of_text(const std::string& text, const RequestLimits& limits = {}) {
  try {
    parse_chat_request(text, limits);
  } catch (const ApiError& e) {
    return e.status();
  }
  return 200;
}
int status_of(const Json& body, const RequestLimits& limits = {}) { return status_of_text(body.dump(), limits); }

TEST(ServeRequest, ReadsTheQuestionImagesAndParametersAndRefusesWhatItCannotAnswer) {
  const std::string front = jpeg_data_uri(test::first_frame_images()[0]);
  Json body = chat_body("Is the road clear?", {front, front});
  body["messages"].insert(body["messages"].begin(), Json{{"role", "system"}, {"content", "ignored"}});
  body["max_tokens"] = 12;
  body["temperature"] = 0;
  body["seed"] = 5;
  body["stop"] = Json::array({"\n\n", "END"});
  body["category"] = "Planning";
  body["some_future_field"] = {{"x", 1}};
  const ChatRequest r = parse_chat_request(body.dump(), {});
  EXPECT_EQ(r.question, "Is the road clear?");
  EXPECT_EQ(r.category, "planning");
  ASSERT_EQ(r.images.size(), 2u);
  EXPECT_EQ(r.images[0].bytes, read_file_bytes(test::first_frame_images()[0]));
  EXPECT_EQ(r.max_tokens, 12);
  EXPECT_EQ(r.temperature, 0.0f);
  EXPECT_EQ(r.seed, 5u);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"\n\n", "END"}));
  EXPECT_FALSE(r.stream);

  const auto with = [&](const char* field, const Json& value) {
    Json b = chat_body("q", {front});
    b[field] = value;
    return b;
  };
  EXPECT_EQ(status_of_text("not json"), 400);
  EXPECT_EQ(status_of_text("[1]"), 400);
  EXPECT_EQ(status_of(with("max_tokens", 0)), 400);
  EXPECT_EQ(status_of(with("max_tokens", 5000)), 400);  // above the limit
  EXPECT_EQ(status_of(with("max_tokens", 1.5)), 400);
  EXPECT_EQ(status_of(with("temperature", 3)), 400);
  EXPECT_EQ(status_of(with("top_p", "high")), 400);
  EXPECT_EQ(status_of(with("n", 2)), 400);
  EXPECT_EQ(status_of(with("stop", Json::array({"a", "b", "c", "d", "e"}))), 400);
  EXPECT_EQ(status_of(with("stream", "yes")), 400);
  EXPECT_EQ(status_of(chat_body("q", {})), 400);                                    // no image
  EXPECT_EQ(status_of(chat_body("  ", {front})), 400);                              // no question
  EXPECT_EQ(status_of(chat_body("q", {"data:text/plain;base64,aGVsbG8="})), 400);  // not an image type
  EXPECT_EQ(status_of(chat_body("q", {"data:image/png;base64,aGVsbG8="})), 400);   // says PNG, is not one
  EXPECT_EQ(status_of(chat_body("q", {"data:image/jpeg;base64,@@@@"})), 400);      // not base64
  EXPECT_EQ(status_of(chat_body("q", {"https://example.com/a.jpg"})), 400);        // nothing fetched
  EXPECT_EQ(status_of(chat_body("q", std::vector<std::string>(7, front))), 400);   // more than 6
  RequestLimits seven;
  seven.max_images = 7;
  EXPECT_EQ(status_of(chat_body("q", std::vector<std::string>(7, front)), seven), 200);
}

// Bytes the server's store already holds were decoded when first stored: they are not decoded
// again, and only those exact bytes skip the check.
TEST(ServeRequest, ImagesTheStoreHoldsAreNotDecodedAgain) {
  const std::string not_a_png = "data:image/png;base64,aGVsbG8=";  // "hello"
  const std::vector<uint8_t> hello = {'h', 'e', 'l', 'l', 'o'};
  int asked = 0;
  const KnownImage holds_hello = [&](const std::vector<uint8_t>& bytes) { ++asked; return bytes == hello; };
  EXPECT_NO_THROW(parse_chat_request(chat_body("q", {not_a_png}).dump(), {}, holds_hello));
  EXPECT_EQ(asked, 1);
  EXPECT_THROW(parse_chat_request(chat_body("q", {"data:image/png;base64,aGVsbG8h"}).dump(), {}, holds_hello), ApiError)
      << "other bytes are decoded, and refused";

  const fs::path dir = test::scratch_dir("serve-holds") / "store";
  fs::create_directories(dir);
  MediaStore store(dir, 0);
  EXPECT_EQ(store.lease_if_held(hello), nullptr);
  {
    const auto lease = store.put(hello);
    const auto again = store.lease_if_held(hello);
    ASSERT_NE(again, nullptr);
    EXPECT_EQ(again->path(), lease->path());
    EXPECT_EQ(store.lease_if_held({'h', 'e', 'l', 'l'}), nullptr);
  }
  EXPECT_EQ(store.lease_if_held(hello), nullptr) << "evicted (no idle file kept): decoded again when it comes back";
}

TEST(ServeRequest, FileUrlsOnlyUnderTheAllowedFolder) {
  const fs::path dir = test::scratch_dir("serve-media");
  fs::create_directories(dir / "allowed" / "cams");
  fs::copy_file(test::first_frame_images()[0], dir / "allowed" / "cams" / "front.jpg");
  fs::copy_file(test::first_frame_images()[0], dir / "outside.jpg");
  fs::create_symlink(dir / "outside.jpg", dir / "allowed" / "link.jpg");
  RequestLimits limits;
  limits.allowed_media_dir = dir / "allowed";
  const std::string inside = "file://" + (dir / "allowed" / "cams" / "front.jpg").string();
  EXPECT_EQ(status_of(chat_body("q", {inside}), limits), 200);
  EXPECT_EQ(status_of(chat_body("q", {"file://" + (dir / "allowed" / "cams" / "fr%6Fnt.jpg").string()}), limits), 200);
  EXPECT_EQ(status_of(chat_body("q", {inside}), {}), 400);  // file:// off without the folder
  for (const fs::path& bad : {dir / "outside.jpg", dir / "allowed" / ".." / "outside.jpg", dir / "allowed" / "link.jpg",
                              dir / "allowed" / "missing.jpg", dir / "allowed", fs::path("/etc/passwd")}) {
    EXPECT_EQ(status_of(chat_body("q", {"file://" + bad.string()}), limits), 403) << bad;
  }
  EXPECT_EQ(status_of(chat_body("q", {"file://relative/a.jpg"}), limits), 400);
}

TEST(ServeRequest, Base64DecodesTheStandardAlphabetOnly) {
  EXPECT_EQ(decode_base64("aGVsbG8="), (std::vector<uint8_t>{'h', 'e', 'l', 'l', 'o'}));
  EXPECT_EQ(decode_base64("aGVsbG8"), (std::vector<uint8_t>{'h', 'e', 'l', 'l', 'o'}));
  EXPECT_EQ(decode_base64(""), std::vector<uint8_t>{});
  EXPECT_FALSE(decode_base64("aGVs bG8="));
  EXPECT_FALSE(decode_base64("aGVsb"));
  EXPECT_FALSE(decode_base64("aGVs-G8="));
  const std::vector<uint8_t> all = [] {
    std::vector<uint8_t> v;
    for (int i = 0; i < 256; ++i) v.push_back(static_cast<uint8_t>(i));
    return v;
  }();
  EXPECT_EQ(decode_base64(encode_base64(all)), all);
}

TEST(ServeMedia, SameBytesShareAFileThatStaysWhileLeased) {
  const fs::path dir = test::scratch_dir("serve-store") / "store";
  EXPECT_THROW(MediaStore missing(dir, 1), Error) << "no folder";
  fs::create_directories(dir);
  {
    MediaStore store(dir, 1);
    const std::vector<uint8_t> a = {1, 2, 3}, b = {4, 5}, c = {6};
    auto a1 = store.put(a);
    auto a2 = store.put(a);
    auto b1 = store.put(b);
    EXPECT_EQ(a1->path(), a2->path());
    EXPECT_NE(a1->path(), b1->path());
    EXPECT_EQ(read_file_bytes(a1->path()), a);
    const fs::path a_path = a1->path(), b_path = b1->path();
    a1.reset();
    EXPECT_TRUE(fs::exists(a_path)) << "still leased";
    a2.reset();
    b1.reset();  // two idle files, one kept: the least recently released goes
    EXPECT_FALSE(fs::exists(a_path));
    EXPECT_TRUE(fs::exists(b_path));
    auto c1 = store.put(c);
    EXPECT_TRUE(fs::exists(c1->path()));
    EXPECT_THROW(MediaStore another(dir, 1), Error) << "the folder is not empty: another store's";
    // Evicted bytes come back under a new name: a path never stands for two contents.
    const std::vector<uint8_t> d = {7};
    auto a3 = store.put(a);
    EXPECT_NE(a3->path(), a_path);
    EXPECT_EQ(read_file_bytes(a3->path()), a);
    auto d1 = store.put(d);
    EXPECT_NE(d1->path(), a_path);
  }
  EXPECT_FALSE(fs::exists(dir)) << "removed with the store";
}

// A server's rounds: frames decoded together (ModelWorker::answer_frames) answer every item once,
// agree with frames decoded one after another up to rounding (README "Reproducibility"), evaluate
// each frame's prefix once and keep it for the next round's requests about the frame.
TEST(ServeRounds, FramesDecodedTogetherAnswerEveryItemOnceAndKeepTheirPrefixes) {
  const std::vector<QuestionItem> items = read_question_file(test::demo_dir() / "questions.json", {test::demo_dir()});
  std::vector<const QuestionItem*> all;
  for (const QuestionItem& item : items) all.push_back(&item);
  const auto options = [](bool together) {
    RunOptions o;
    o.model_7b = test::tiny_model_dir();
    o.engine.n_threads = 2;
    o.engine.image_max_tokens = 64;
    o.sizing.max_pixels = 64 * 28 * 28;
    o.frames.kv_type = GGML_TYPE_F16;
    o.prompts = default_prompts(512);
    o.max_new_tokens_cap = 12;
    o.keep_models_loaded = true;
    o.frames.whole_context = together;
    o.interleave_frames = together;
    return o;
  };
  const auto answer = [&](Runner& runner) {
    std::map<size_t, std::string> answers;
    runner.answer_all(all, [&](const QuestionItem& item, ItemResult r) {
      EXPECT_TRUE(answers.emplace(item.index, r.answer).second) << "item " << item.index << " answered twice";
    });
    return answers;
  };
  Runner alone(options(false));
  const auto one_by_one = answer(alone);
  Runner together(options(true));
  const auto mixed = answer(together);
  ASSERT_EQ(mixed.size(), items.size());
  size_t same = 0;
  for (const auto& [index, text] : mixed) same += one_by_one.at(index) == text ? 1 : 0;
  const RunCounters& c = together.counters();
  std::printf("frames decoded together: %zu of %zu answers as one frame at a time; up to %zu questions at once, "
              "%zu prefix evaluations for %zu frames\n", same, mixed.size(), c.max_parallel, c.prefix_evaluations, c.frames);
  EXPECT_GE(same, mixed.size() * 9 / 10);
  EXPECT_GT(c.max_parallel, alone.counters().max_parallel) << "questions of several frames in the same batches";
  EXPECT_EQ(c.prefix_evaluations, alone.counters().prefix_evaluations);
  EXPECT_EQ(c.images_encoded, alone.counters().images_encoded);
  // The same requests again: every prefix is still held, nothing is evaluated or encoded anew.
  const size_t evaluations = c.prefix_evaluations, encodes = c.images_encoded;
  const auto again = answer(together);
  EXPECT_EQ(again.size(), items.size());
  EXPECT_EQ(together.counters().prefix_evaluations, evaluations);
  EXPECT_EQ(together.counters().images_encoded, encodes);
}

}  // namespace
}  // namespace drivevqa
