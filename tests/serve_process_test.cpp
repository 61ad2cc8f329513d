// The real `drivevqa serve` process on 127.0.0.1, driven by curl and the official OpenAI Node SDK:
// its greedy answers are run's, streamed replies add up to the whole one, bad requests get a 4xx
// with a JSON error and the server goes on serving, SIGTERM lets it finish and exit.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <thread>

#include "dataset/question_file.h"
#include "support/test_support.h"
#include "util/files.h"

namespace drivevqa {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// The official client, installed once per machine (npm; a lock keeps parallel tests from racing).
constexpr const char* kOpenAiPackage = "openai@6.49.0";

fs::path openai_sdk_modules() {
  const fs::path home = fs::path(std::getenv("HOME") ? std::getenv("HOME") : "/tmp") / ".cache" / "drivevqa" / "npm-openai-6.49.0";
  fs::create_directories(home);
  const int lock = ::open((home / ".lock").c_str(), O_CREAT | O_RDWR, 0644);
  ::flock(lock, LOCK_EX);
  if (!fs::exists(home / "node_modules" / "openai" / "package.json")) {
    const auto r = test::run_process({"npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", home.string(), kOpenAiPackage});
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
  ::flock(lock, LOCK_UN);
  ::close(lock);
  return home / "node_modules";
}

// `curl` as a user would run it: the status code and the body.
struct Reply {
  int status = 0;
  std::string body;
  std::string headers;
};

Reply curl(const std::vector<std::string>& args) {
  const fs::path dir = test::scratch_dir("curl");
  std::vector<std::string> argv = {"curl", "-sS", "-o", (dir / "body").string(), "-D", (dir / "headers").string(), "-w", "%{http_code}"};
  argv.insert(argv.end(), args.begin(), args.end());
  const auto r = test::run_process(argv);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return {std::atoi(r.out.c_str()), fs::exists(dir / "body") ? test::read_text(dir / "body") : "",
          fs::exists(dir / "headers") ? test::read_text(dir / "headers") : ""};
}

Reply post_json(const std::string& url, const std::string& body, const std::vector<std::string>& extra = {}) {
  const fs::path file = test::scratch_dir("curl-body") / "body.json";
  test::write_bytes(file, body);
  std::vector<std::string> args = {"-X", "POST", "-H", "Content-Type: application/json", "--data-binary", "@" + file.string(), url};
  args.insert(args.end(), extra.begin(), extra.end());
  return curl(args);
}

std::string data_uri(const fs::path& file) {
  const auto r = test::run_process({"base64", "-w", "0", file.string()});
  return "data:image/jpeg;base64," + r.out;
}

// The settings both `run` and `serve` get, so that their prompts and budgets are the same.
std::vector<std::string> shared_flags() {
  return {"--model_7b", test::tiny_model_dir().string(), "--dtype", "fp16", "--image_max_tokens", "64",
          "--max_new_tokens_cap", "16", "-t", "2", "--parallel", "1"};
}

// A running `drivevqa serve`, stopped with SIGTERM at the end.
class ServeProcess {
 public:
  explicit ServeProcess(const std::vector<std::string>& extra) {
    const fs::path dir = test::scratch_dir("serve-process");
    log_ = dir / "serve.log";
    port_ = test::free_tcp_port();
    std::vector<std::string> argv = {test::drivevqa_binary(), "serve", "--port", std::to_string(port_)};
    for (const auto& f : shared_flags()) argv.push_back(f);
    argv.insert(argv.end(), extra.begin(), extra.end());
    pid_ = test::spawn_process_with_output(argv, (dir / "serve.out").string(), log_.string());
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (std::chrono::steady_clock::now() < deadline) {
      const auto r = test::run_process({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url("/health")});
      if (r.out == "200") return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "the server did not come up: " << test::read_text(log_);
  }
  ~ServeProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      test::wait_process(pid_);
    }
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  // SIGTERM: the exit code.
  int terminate() {
    ::kill(pid_, SIGTERM);
    const int rc = test::wait_process(pid_);
    pid_ = -1;
    return rc;
  }
  std::string log() const { return test::read_text(log_); }

 private:
  fs::path log_;
  int port_ = 0;
  int pid_ = -1;
};

// The demo's first frame: items 0.. with their questions, categories and six images.
std::vector<QuestionItem> first_frame_items(size_t count) {
  std::vector<QuestionItem> items = read_question_file(test::demo_dir() / "questions.json", {test::demo_dir()});
  items.resize(count);
  return items;
}

Json chat_request_for(const QuestionItem& item) {
  Json content = Json::array({Json{{"type", "text"}, {"text", item.question}}});
  for (const CameraImage& image : item.images) {
    content.push_back(Json{{"type", "image_url"}, {"image_url", {{"url", data_uri(image.path)}}}});
  }
  return Json{{"model", "drivevqa"},
              {"category", item.category},
              {"temperature", 0},
              {"messages", Json::array({Json{{"role", "user"}, {"content", content}}})}};
}

TEST(ServeProcess, OpenAiSdkAndCurlGetRunsGreedyAnswersAndBadRequestsGet4xx) {
  const fs::path dir = test::scratch_dir("serve-e2e");
  constexpr size_t kItems = 8;  // MCQs, yes/no and open questions of one frame
  // run's answers for the same items (--parallel 1: each as if alone, whatever else is decoded).
  std::vector<std::string> run_args = {test::drivevqa_binary(), "run", "--json_file", (test::demo_dir() / "questions.json").string(),
                                       "--image_base_dir", test::demo_dir().string(), "--output_file", (dir / "run.json").string(),
                                       "--limit", std::to_string(kItems)};
  for (const auto& f : shared_flags()) run_args.push_back(f);
  const auto ran = test::run_process(run_args);
  ASSERT_EQ(ran.exit_code, 0) << ran.err;
  const Json run_results = Json::parse(test::read_text(dir / "run.json"));

  const fs::path media = dir / "media";
  fs::create_directories(media);
  fs::copy_file(test::first_frame_images()[0], media / "front.jpg");
  ServeProcess server({"--allowed_media_dir", media.string(), "--max_body_mb", "2"});

  // The SDK: every item, whole and streamed.
  const std::vector<QuestionItem> items = first_frame_items(kItems);
  Json requests = Json::array();
  for (const QuestionItem& item : items) requests.push_back(chat_request_for(item));
  test::write_bytes(dir / "requests.json", Json{{"base_url", server.url("/v1")}, {"requests", requests}}.dump());
  const auto node = test::run_process({"node", (fs::path(DRIVEVQA_SOURCE_DIR) / "tests" / "clients" / "openai_chat.mjs").string(),
                                       openai_sdk_modules().string(), (dir / "requests.json").string(), (dir / "answers.json").string()});
  ASSERT_EQ(node.exit_code, 0) << node.err << server.log();
  const Json sdk = Json::parse(test::read_text(dir / "answers.json"));
  ASSERT_EQ(sdk["answers"].size(), kItems);
  for (size_t i = 0; i < kItems; ++i) {
    const Json& a = sdk["answers"][i];
    ASSERT_TRUE(a["answer"].is_string() && !a["answer"].get<std::string>().empty()) << a.dump();
    EXPECT_EQ(a["answer"], run_results[i]["answer"]) << "item " << i << ": " << items[i].question;
    EXPECT_EQ(a["streamed"], a["answer"]) << "item " << i;
    EXPECT_GT(a["usage"]["prompt_tokens"].get<int>(), 64 * 6);
    EXPECT_EQ(a["usage"]["total_tokens"].get<int>(), a["usage"]["prompt_tokens"].get<int>() + a["usage"]["completion_tokens"].get<int>());
    EXPECT_EQ(a["stream_usage"]["completion_tokens"], a["usage"]["completion_tokens"]) << "item " << i;
  }
  EXPECT_EQ(sdk["unknown_model"]["status"], 404) << sdk.dump();

  // curl: the same answer, and a file:// image inside the allowed folder.
  const Reply first = post_json(server.url("/v1/chat/completions"), chat_request_for(items[0]).dump());
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(Json::parse(first.body)["choices"][0]["message"]["content"], run_results[0]["answer"]);
  Json by_file = chat_request_for(items[0]);
  by_file["messages"][0]["content"][1]["image_url"]["url"] = "file://" + (media / "front.jpg").string();
  EXPECT_EQ(post_json(server.url("/v1/chat/completions"), by_file.dump()).status, 200);

  // Bad requests: 4xx with an OpenAI-style JSON error, and the server keeps serving.
  const auto expect_refused = [&](const std::string& what, const Reply& reply, int status) {
    EXPECT_EQ(reply.status, status) << what << ": " << reply.body;
    const auto error = nlohmann::json::parse(reply.body, nullptr, false);
    EXPECT_TRUE(!error.is_discarded() && error.contains("error") && error["error"]["message"].is_string()) << what << ": " << reply.body;
  };
  const std::string endpoint = server.url("/v1/chat/completions");
  expect_refused("not JSON", post_json(endpoint, "{\"model\": "), 400);
  Json unknown = chat_request_for(items[0]);
  unknown["model"] = "gpt-4o";
  expect_refused("unknown model", post_json(endpoint, unknown.dump()), 404);
  Json not_image = chat_request_for(items[0]);
  not_image["messages"][0]["content"][1]["image_url"]["url"] = "data:text/plain;base64,aGVsbG8=";
  expect_refused("a non-image data URI", post_json(endpoint, not_image.dump()), 400);
  Json outside = chat_request_for(items[0]);
  outside["messages"][0]["content"][1]["image_url"]["url"] = "file://" + test::first_frame_images()[1].string();
  expect_refused("file:// outside the allowed folder", post_json(endpoint, outside.dump()), 403);
  Json many = chat_request_for(items[0]);
  many["messages"][0]["content"].push_back(many["messages"][0]["content"][1]);
  expect_refused("seven images", post_json(endpoint, many.dump()), 400);
  expect_refused("a body over --max_body_mb", post_json(endpoint, std::string(3 << 20, ' ')), 413);
  expect_refused("no such endpoint", curl({server.url("/v1/embeddings")}), 404);

  const Reply models = curl({server.url("/v1/models")});
  EXPECT_EQ(models.status, 200);
  EXPECT_NE(models.body.find("\"drivevqa-7b\""), std::string::npos) << models.body;
  const Reply again = post_json(endpoint, chat_request_for(items[1]).dump());
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(Json::parse(again.body)["choices"][0]["message"]["content"], run_results[1]["answer"]);

  const Reply metrics = curl({server.url("/metrics")});
  EXPECT_NE(metrics.body.find("drivevqa_requests_total{status=\"200\"}"), std::string::npos) << metrics.body;
  EXPECT_NE(metrics.body.find("drivevqa_requests_total{status=\"413\"}"), std::string::npos) << metrics.body;
  EXPECT_NE(metrics.body.find("drivevqa_prefix_cache_hits_total"), std::string::npos) << metrics.body;
  EXPECT_EQ(server.terminate(), 0) << server.log();
}

TEST(ServeProcess, ApiKeyIsAskedForAndOnlyLoopbackGoesWithoutOne) {
  // Listening beyond loopback without a key is refused at start.
  const auto open = test::run_process({test::drivevqa_binary(), "serve", "--host", "0.0.0.0", "--model_7b", test::tiny_model_dir().string()});
  EXPECT_EQ(open.exit_code, 2) << open.err;
  EXPECT_NE(open.err.find("--api_key_env"), std::string::npos) << open.err;

  ::setenv("DRIVEVQA_TEST_SERVE_KEY", "s3cret", 1);  // inherited by the server
  ServeProcess server({"--api_key_env", "DRIVEVQA_TEST_SERVE_KEY"});
  EXPECT_EQ(curl({server.url("/v1/models")}).status, 401);
  EXPECT_EQ(curl({"-H", "Authorization: Bearer wrong", server.url("/v1/models")}).status, 401);
  EXPECT_EQ(curl({"-H", "Authorization: Bearer s3cret", server.url("/v1/models")}).status, 200);
  EXPECT_EQ(curl({server.url("/metrics")}).status, 401);
  EXPECT_EQ(curl({server.url("/health")}).status, 200);
  EXPECT_EQ(server.terminate(), 0);
}

}  // namespace
}  // namespace drivevqa
