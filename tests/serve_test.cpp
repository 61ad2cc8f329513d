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
#include "serve/scheduler.h"
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

// The tiny model on small images; `together`: a server's rounds (frames decoded together).
RunOptions round_options(bool together, int answer_cap = 12) {
  RunOptions o;
  o.model_7b = test::tiny_model_dir();
  o.engine.n_threads = 2;
  o.engine.image_max_tokens = 64;
  o.sizing.max_pixels = 64 * 28 * 28;
  o.frames.kv_type = GGML_TYPE_F16;
  o.prompts = default_prompts(512);
  o.max_new_tokens_cap = answer_cap;
  o.keep_models_loaded = true;
  o.frames.whole_context = together;
  o.interleave_frames = together;
  return o;
}

// A server's rounds: frames decoded together (ModelWorker::answer_frames) answer every item once,
// agree with frames decoded one after another up to rounding (README "Reproducibility"), evaluate
// each frame's prefix once and keep it for the next round's requests about the frame.
TEST(ServeRounds, FramesDecodedTogetherAnswerEveryItemOnceAndKeepTheirPrefixes) {
  const std::vector<QuestionItem> items = read_question_file(test::demo_dir() / "questions.json", {test::demo_dir()});
  std::vector<const QuestionItem*> all;
  for (const QuestionItem& item : items) all.push_back(&item);
  const auto answer = [&](Runner& runner) {
    std::map<size_t, std::string> answers;
    runner.answer_all(all, [&](const QuestionItem& item, ItemResult r) {
      EXPECT_TRUE(answers.emplace(item.index, r.answer).second) << "item " << item.index << " answered twice";
    });
    return answers;
  };
  Runner alone(round_options(false));
  const auto one_by_one = answer(alone);
  Runner together(round_options(true));
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

// Items that arrive while a round decodes (LateItems): those about a frame whose prefix is held
// join the decoding under way and are answered in it, as they would be in a round of their own;
// one about another frame is handed back, untouched, for a later round.
TEST(ServeRounds, ItemsArrivingDuringARoundJoinItWhenTheirFramesPrefixIsHeld) {
  const std::vector<QuestionItem> items = read_question_file(test::demo_dir() / "questions.json", {test::demo_dir()});
  ASSERT_GT(items.size(), 20u);
  const auto paths = [](const QuestionItem& item) {
    std::vector<fs::path> p;
    for (const CameraImage& c : item.images) p.push_back(c.path);
    return p;
  };
  // The first frame's well-formed questions over its six images; item 17 is of the same frame but misses a
  // camera (other images: another prefix), item 20 is of the next frame.
  std::vector<const QuestionItem*> first_frame;
  for (size_t i = 0; i < 20; ++i) {
    if (paths(items[i]) == paths(items[0]) && items[i].problem.empty()) first_frame.push_back(&items[i]);
  }
  ASSERT_GE(first_frame.size(), 10u);
  ASSERT_EQ(items[17].frame_token, items[0].frame_token);
  ASSERT_NE(paths(items[17]), paths(items[0]));
  ASSERT_NE(items[20].frame_token, items[0].frame_token);

  Runner alone(round_options(false));
  std::map<size_t, std::string> one_by_one;
  alone.answer_all(first_frame, [&](const QuestionItem& item, ItemResult r) { one_by_one[item.index] = r.answer; });

  Runner runner(round_options(true));
  std::map<size_t, ItemResult> answered;
  const auto sink = [&](const QuestionItem& item, ItemResult r) {
    EXPECT_TRUE(answered.emplace(item.index, std::move(r)).second) << "item " << item.index << " answered twice";
  };
  size_t takes = 0;
  std::vector<size_t> declined;
  const LateItems late{[&] {
                         std::vector<const QuestionItem*> arrived;
                         if (takes++ == 0) {  // the rest of the frame, and a question about the next one
                           arrived.assign(first_frame.begin() + 2, first_frame.end());
                           arrived.push_back(&items[17]);
                           arrived.push_back(&items[20]);
                         }
                         return arrived;
                       },
                       [&](const QuestionItem& item) { declined.push_back(item.index); }};
  const std::vector<const QuestionItem*> round(first_frame.begin(), first_frame.begin() + 2);
  runner.answer_all(round, sink, &late);
  EXPECT_GT(takes, 2u) << "offered between decoding steps";
  EXPECT_EQ(declined, (std::vector<size_t>{17, 20})) << "their prefixes are not held";
  ASSERT_EQ(answered.size(), first_frame.size()) << "the whole first frame, in one round";
  EXPECT_EQ(runner.counters().prefix_evaluations, 1u);
  size_t same = 0;
  for (const auto& [index, result] : answered) {
    EXPECT_FALSE(result.is_error) << result.answer;
    if (index > first_frame[1]->index) EXPECT_GT(result.cached_prompt_tokens, 0u) << "item " << index << " joined over the held prefix";
    same += one_by_one.at(index) == result.answer ? 1 : 0;
  }
  EXPECT_GE(same, answered.size() * 9 / 10) << "joining does not change answers beyond rounding";
  EXPECT_GT(runner.counters().max_parallel, 2u) << "the joined questions decoded beside the first two";

  // The declined item, in a later round: its frame's prefix is evaluated then.
  runner.answer_all(std::vector<const QuestionItem*>{&items[20]}, sink);
  EXPECT_EQ(answered.count(20), 1u);
  EXPECT_EQ(runner.counters().prefix_evaluations, 2u);
}

// The scheduler: a request that arrives while a round decodes joins it; once one had to wait for
// the next round (its frame not held), nothing joins the round under way after it.
TEST(ServeRounds, ARequestArrivingMidRoundJoinsItAndNoneJoinsAfterOneHadToWait) {
  const std::vector<QuestionItem> items = read_question_file(test::demo_dir() / "questions.json", {test::demo_dir()});
  ASSERT_GT(items.size(), 33u);
  ASSERT_NE(items[13].frame_token, items[33].frame_token);
  Scheduler scheduler(round_options(true, 0), 16);
  std::thread engine([&] { scheduler.run(); });
  struct StopEngine {
    Scheduler& scheduler;
    std::thread& engine;
    ~StopEngine() {
      scheduler.stop();
      engine.join();
    }
  } stop_engine{scheduler, engine};
  const auto deadline = [] { return std::chrono::steady_clock::now() + std::chrono::seconds(120); };
  const auto submit = [&](size_t index, int budget) {  // open questions of the demo's first two frames
    ItemRequest request;
    request.max_new_tokens = budget;
    auto job = std::make_shared<ServeJob>(items[index], std::move(request), std::vector<std::string>(),
                                          std::vector<std::unique_ptr<MediaStore::Lease>>());
    EXPECT_TRUE(scheduler.submit(job));
    return job;
  };
  const auto answered = [](const std::shared_ptr<ServeJob>& job) {
    const ServeJob::Outcome o = job->outcome();
    return o.result && !o.result->is_error;
  };
  // The scheduler's figures once `n` jobs are answered and the round has ended (until then, a job
  // submitted would join it).
  const auto counted = [&](size_t n) {
    const auto end = deadline();
    const auto idle = [&] {
      const SchedulerSnapshot s = scheduler.snapshot();
      return s.answered >= n && s.running == 0;
    };
    while (!idle() && std::chrono::steady_clock::now() < end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return scheduler.snapshot();
  };

  const auto long_one = submit(13, 48);
  long_one->wait_for_more(0, deadline());  // decoding
  const auto joining = submit(11, 4);
  ASSERT_TRUE(joining->wait(deadline()));
  ASSERT_TRUE(long_one->wait(deadline()));
  EXPECT_TRUE(answered(joining) && answered(long_one));
  EXPECT_GE(long_one->outcome().result->generated_tokens, 40u) << "it was still decoding when the other came";
  SchedulerSnapshot s = counted(2);
  EXPECT_EQ(s.rounds, 1u) << "the second request joined the first's round";
  EXPECT_EQ(s.joined, 1u);
  EXPECT_GT(joining->outcome().result->cached_prompt_tokens, 0u);

  const auto again = submit(14, 48);
  again->wait_for_more(0, deadline());
  const auto other_frame = submit(33, 4);
  while (scheduler.snapshot().deferred == 0 && !again->wait(std::chrono::steady_clock::now() + std::chrono::milliseconds(1))) {
  }
  ASSERT_EQ(scheduler.snapshot().deferred, 1u) << "taken and handed back while the round decoded";
  const auto after_it = submit(12, 4);
  ASSERT_TRUE(after_it->wait(deadline()));
  EXPECT_TRUE(again->wait(std::chrono::steady_clock::now())) << "the later request did not pass the waiting one";
  ASSERT_TRUE(other_frame->wait(deadline()));
  EXPECT_TRUE(answered(again) && answered(other_frame) && answered(after_it));
  s = counted(5);
  EXPECT_EQ(s.joined, 1u);
  EXPECT_EQ(s.rounds, 3u);
  EXPECT_EQ(s.answered, 5u);
}

}  // namespace
}  // namespace drivevqa
