// The LLM judge: the score reader, the request it sends, retries, the reply cache, order under
// parallelism and refused keys (against an in-process recording server), and a real llama-server
// with the tiny model (a grammar that forces a score, and the gibberish the random weights produce).
#include <gtest/gtest.h>
#include <httplib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "eval/judge.h"
#include "support/test_support.h"
#include "util/error.h"

namespace drivevqa {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

TEST(JudgeParse, ReadsTheFirstTotalScore) {
  EXPECT_EQ(parse_total_score("Total Score: 85"), 85);
  EXPECT_EQ(parse_total_score("total score:7"), 7);
  EXPECT_EQ(parse_total_score("TOTAL SCORE:\n  100 points"), 100);
  EXPECT_EQ(parse_total_score("1. Correctness: 40\nTotal Score: 62\nTotal Score: 90"), 62);
  EXPECT_EQ(parse_total_score("**Total Score:** 55"), 55);
  EXPECT_EQ(parse_total_score("Total Score: 0"), 0);
  EXPECT_EQ(parse_total_score("Total Score: n/a ... Total Score: 40"), 40);  // the first that has a number
}

TEST(JudgeParse, RejectsMissingAndOutOfRangeScores) {
  EXPECT_EQ(parse_total_score("Total Score: 101"), std::nullopt);
  EXPECT_EQ(parse_total_score("Total Score: 1000"), std::nullopt);
  EXPECT_EQ(parse_total_score("no score"), std::nullopt);
  EXPECT_EQ(parse_total_score("Score: 80"), std::nullopt);
  EXPECT_EQ(parse_total_score(""), std::nullopt);
  EXPECT_EQ(parse_total_score("Total Score: -5"), std::nullopt);
}

TEST(JudgePrompt, HoldsTheItemAndTheRubricOfItsType) {
  JudgeItem item{JudgeRubric::kPlanning, "What should the ego car do?", "Slow down.", "Brake gently."};
  const std::string planning = judge_prompt(item);
  for (const char* part : {"What should the ego car do?", "Slow down.", "Brake gently.", "Total Score:", "(40 points)"}) {
    EXPECT_NE(planning.find(part), std::string::npos) << part;
  }
  item.rubric = JudgeRubric::kPerceptionMcq;
  EXPECT_NE(judge_prompt(item).find("(50 points)"), std::string::npos);
  EXPECT_NE(judge_prompt(item), planning);
  EXPECT_EQ(rubric_name(JudgeRubric::kPerceptionMcq), "perception_mcq");
  EXPECT_EQ(rubric_name(JudgeRubric::kPerceptionVqa), "perception_vqa");
  EXPECT_EQ(rubric_name(JudgeRubric::kPrediction), "prediction");
  EXPECT_EQ(rubric_name(JudgeRubric::kPlanning), "planning");
  EXPECT_EQ(rubric_name(JudgeRubric::kBehavior), "behavior");
}

// ---------------------------------------------------------------------------------------------
// An OpenAI-compatible server in this process that records every request and answers by a script.

struct Recorded {
  std::string path;
  std::optional<std::string> authorization;
  Json body;
};

struct Scripted {
  int status = 200;
  std::string content;
};

class RecordingServer {
 public:
  // `script(user message, how many times this message was seen before)`.
  using Script = std::function<Scripted(const std::string& user, int seen)>;

  explicit RecordingServer(Script script) : script_(std::move(script)) {
    server_.Post(".*", [this](const httplib::Request& req, httplib::Response& res) { handle(req, res); });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~RecordingServer() {
    server_.stop();
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<Recorded> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  int max_in_flight() const { return max_in_flight_; }

 private:
  void handle(const httplib::Request& req, httplib::Response& res) {
    const int now = ++in_flight_;
    for (int m = max_in_flight_; now > m && !max_in_flight_.compare_exchange_weak(m, now);) {
    }
    Recorded r{req.path, std::nullopt, Json::parse(req.body, nullptr, false)};
    if (req.has_header("Authorization")) r.authorization = req.get_header_value("Authorization");
    std::string user;
    if (r.body.is_object() && r.body.contains("messages") && r.body["messages"].size() == 2) {
      user = r.body["messages"][1].value("content", "");
    }
    int seen = 0;
    {
      std::lock_guard lock(mutex_);
      seen = seen_[user]++;
      requests_.push_back(std::move(r));
    }
    const Scripted reply = script_(user, seen);
    res.status = reply.status;
    const Json body = {{"choices", Json::array({{{"index", 0}, {"message", {{"role", "assistant"}, {"content", reply.content}}}}})}};
    res.set_content(reply.status == 200 ? body.dump() : R"({"error":"scripted"})", "application/json");
    --in_flight_;
  }

  Script script_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::vector<Recorded> requests_;
  std::map<std::string, int> seen_;
  std::atomic<int> in_flight_{0}, max_in_flight_{0};
};

// Items whose answer tells the script what to do: "score N", "garbage once, then N", "garbage".
JudgeItem item(const std::string& answer) { return {JudgeRubric::kPerceptionVqa, "Which objects matter?", answer, "A car ahead."}; }

Scripted by_answer(const std::string& user, int seen) {
  const size_t at = user.find("Predicted answer:\n");
  const std::string answer = at == std::string::npos ? "" : user.substr(at + 18);
  if (answer == "garbage") return {200, "I would rather not say."};
  if (answer.rfind("garbage once, then ", 0) == 0) {
    return {200, seen == 0 ? "Hmm." : "1. Objects found: 10\nTotal Score: " + answer.substr(19)};
  }
  if (answer.rfind("score ", 0) == 0) return {200, "Objects: 20\nTotal Score: " + answer.substr(6)};
  return {200, "unexpected item"};
}

JudgeOptions options_for(const RecordingServer& server) {
  JudgeOptions o;
  o.url = server.url();
  o.model = "judge-model";
  o.parallel = 2;
  o.timeout_seconds = 20;
  return o;
}

TEST(JudgeHttp, SendsOneChatRequestPerItemWithTheKeyOnlyAsHeader) {
  RecordingServer server(by_answer);
  JudgeOptions o = options_for(server);
  o.api_key = "sk-test-secret";
  const std::vector<JudgeItem> items = {item("score 85")};
  JudgeStats stats;
  const auto scores = judge_all(items, o, &stats);
  ASSERT_EQ(scores.size(), 1u);
  EXPECT_EQ(scores[0], 85.0);
  EXPECT_EQ(stats.sent, 1u);
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  const Recorded& r = requests[0];
  EXPECT_EQ(r.path, "/v1/chat/completions");
  EXPECT_EQ(r.authorization, "Bearer sk-test-secret");
  EXPECT_EQ(r.body["model"], "judge-model");
  EXPECT_EQ(r.body["temperature"], 0);
  EXPECT_GT(r.body["max_tokens"].get<int>(), 0);
  ASSERT_EQ(r.body["messages"].size(), 2u);
  EXPECT_EQ(r.body["messages"][0]["role"], "system");
  EXPECT_EQ(r.body["messages"][1]["role"], "user");
  // The two messages are the prompt the cache is keyed by.
  EXPECT_EQ(r.body["messages"][0]["content"].get<std::string>() + "\n\n" + r.body["messages"][1]["content"].get<std::string>(),
            judge_prompt(items[0]));

  // No key: no header. A prefix in the URL goes before /v1.
  o.api_key.clear();
  o.url = server.url() + "/proxy/";
  EXPECT_EQ(judge_all(items, o)[0], 85.0);
  ASSERT_EQ(server.requests().size(), 2u);
  EXPECT_EQ(server.requests()[1].path, "/proxy/v1/chat/completions");
  EXPECT_EQ(server.requests()[1].authorization, std::nullopt);
}

TEST(JudgeHttp, AsksOnceMoreWhenTheReplyHasNoScoreThenCountsItMissing) {
  RecordingServer server(by_answer);
  const std::vector<JudgeItem> items = {item("score 85"), item("garbage once, then 60"), item("garbage")};
  JudgeStats stats;
  const auto scores = judge_all(items, options_for(server), &stats);
  ASSERT_EQ(scores.size(), 3u);
  EXPECT_EQ(scores[0], 85.0);
  EXPECT_EQ(scores[1], 60.0);
  EXPECT_EQ(scores[2], std::nullopt);  // missing, never 0
  EXPECT_EQ(stats.sent, 5u);
  EXPECT_EQ(stats.retried, 2u);
  EXPECT_EQ(stats.missing, 1u);
  EXPECT_EQ(stats.cached, 0u);
}

TEST(JudgeHttp, ServerErrorsAreRetriedOnceThenMissing) {
  RecordingServer server([](const std::string&, int) { return Scripted{503, ""}; });
  JudgeStats stats;
  const auto scores = judge_all(std::vector<JudgeItem>{item("score 1"), item("score 2")}, options_for(server), &stats);
  EXPECT_EQ(scores, (std::vector<std::optional<double>>{std::nullopt, std::nullopt}));
  EXPECT_EQ(stats.sent, 4u);
  EXPECT_EQ(stats.missing, 2u);
  EXPECT_EQ(stats.retried, 0u);  // only replies without a score count as retried
}

TEST(JudgeHttp, ARerunWithTheSameCacheSendsNothing) {
  RecordingServer server(by_answer);
  const std::filesystem::path cache = test::scratch_dir("judge-cache") / "sub" / "judge.sqlite";
  JudgeOptions o = options_for(server);
  o.cache_file = cache;
  o.api_key = "sk-never-stored";
  const std::vector<JudgeItem> items = {item("score 10"), item("garbage once, then 20"), item("score 30")};
  JudgeStats first;
  const auto scores = judge_all(items, o, &first);
  EXPECT_EQ(first.sent, 4u);
  EXPECT_EQ(first.cached, 0u);
  const size_t seen = server.requests().size();

  JudgeStats second;
  EXPECT_EQ(judge_all(items, o, &second), scores);
  EXPECT_EQ(second.cached, items.size());
  EXPECT_EQ(second.sent, 0u);
  EXPECT_EQ(server.requests().size(), seen);

  // Another judge model is another key.
  o.model = "other-judge";
  JudgeStats other;
  judge_all(items, o, &other);
  EXPECT_EQ(other.cached, 0u);

  for (const char* suffix : {"", "-wal"}) {
    const std::string bytes = test::read_text(cache.string() + suffix);
    EXPECT_EQ(bytes.find("sk-never-stored"), std::string::npos) << suffix;
  }
}

TEST(JudgeHttp, ItemsWithoutScoreAreNotCachedAndAskedAgainNextRun) {
  RecordingServer server(by_answer);
  JudgeOptions o = options_for(server);
  o.cache_file = test::scratch_dir("judge-cache-missing") / "judge.sqlite";
  const std::vector<JudgeItem> items = {item("score 70"), item("garbage")};
  judge_all(items, o);
  JudgeStats again;
  const auto scores = judge_all(items, o, &again);
  EXPECT_EQ(scores[0], 70.0);
  EXPECT_EQ(scores[1], std::nullopt);
  EXPECT_EQ(again.cached, 1u);
  EXPECT_EQ(again.sent, 2u);
  EXPECT_EQ(again.missing, 1u);
}

TEST(JudgeHttp, ParallelRequestsKeepTheOrderOfTheItems) {
  // Early items answer slowest, so replies arrive out of order.
  RecordingServer server([](const std::string& user, int seen) {
    const Scripted reply = by_answer(user, seen);
    const int n = std::stoi(user.substr(user.rfind(' ') + 1));
    std::this_thread::sleep_for(std::chrono::milliseconds(5 * (30 - n)));
    return reply;
  });
  std::vector<JudgeItem> items;
  for (int i = 0; i < 24; ++i) items.push_back(item("score " + std::to_string(i)));
  JudgeOptions o = options_for(server);
  o.parallel = 3;
  JudgeStats stats;
  const auto scores = judge_all(items, o, &stats);
  ASSERT_EQ(scores.size(), items.size());
  for (size_t i = 0; i < items.size(); ++i) EXPECT_EQ(scores[i], static_cast<double>(i)) << i;
  EXPECT_EQ(stats.sent, items.size());
  EXPECT_GE(server.max_in_flight(), 2);
  EXPECT_LE(server.max_in_flight(), 3);
}

TEST(JudgeHttp, ARefusedKeyThrowsNamingTheUrlButNotTheKey) {
  for (int status : {401, 403}) {
    RecordingServer server([status](const std::string&, int) { return Scripted{status, ""}; });
    JudgeOptions o = options_for(server);
    o.api_key = "sk-wrong-key";
    try {
      judge_all(std::vector<JudgeItem>{item("score 1"), item("score 2")}, o);
      ADD_FAILURE() << "no InputError for HTTP " << status;
    } catch (const InputError& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(server.url()), std::string::npos) << message;
      EXPECT_NE(message.find(std::to_string(status)), std::string::npos) << message;
      EXPECT_EQ(message.find("sk-wrong-key"), std::string::npos) << message;
    }
  }
}


TEST(JudgeHttp, AWrongPathThrowsNamingTheUrl) {
  RecordingServer server([](const std::string&, int) { return Scripted{404, ""}; });
  JudgeOptions o = options_for(server);
  o.url = server.url() + "/v1";
  try {
    judge_all(std::vector<JudgeItem>{item("score 1")}, o);
    ADD_FAILURE() << "no InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(o.url + " has no /v1/v1/chat/completions"), std::string::npos) << e.what();
  }
}

TEST(JudgeHttp, AnUnreachableEndpointThrowsNamingTheUrl) {
  JudgeOptions o;
  o.url = "http://127.0.0.1:" + std::to_string(test::free_tcp_port());
  o.timeout_seconds = 5;
  try {
    judge_all(std::vector<JudgeItem>{item("score 1")}, o);
    ADD_FAILURE() << "no InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(o.url), std::string::npos) << e.what();
  }
}

TEST(JudgeHttp, BadUrlsAreInputErrors) {
  const std::vector<JudgeItem> items = {item("score 1")};
  for (const char* url : {"", "127.0.0.1:8080", "ftp://host:21", "http://:8080", "http://host:port", "http://host:99999", "http://", "http:///v1",
                          "http://user:pw@host:8080"}) {
    JudgeOptions o;
    o.url = url;
    EXPECT_THROW(judge_all(items, o), InputError) << url;
  }
  JudgeOptions o;
  o.url = "http://user:pw@host:8080";
  try {
    judge_all(items, o);
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()).find("pw"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------------------------
// A real llama-server of the engine build, with the tiny random model.

// Runs llama-server until destroyed (killed: nothing of it needs to be saved).
class LlamaServer {
 public:
  explicit LlamaServer(const std::vector<std::string>& extra_args) : port_(test::free_tcp_port()) {
    const std::filesystem::path model = test::tiny_model_dir() / "model.gguf";
    if (!std::filesystem::exists(model)) throw std::runtime_error(model.string() + " is missing (run ctest -R fixtures)");
    log_ = test::scratch_dir("llama-server-" + std::to_string(port_)) / "log.txt";
    // Through sh only to keep the log; exec keeps the pid ours to kill. One thread: on a busy
    // two-core machine two threads decoded 3x slower (measured).
    std::string command = "exec '" + std::string(DRIVEVQA_LLAMA_SERVER) + "' -m '" + model.string() +
                          "' --host 127.0.0.1 --port " + std::to_string(port_) + " -c 4096 -t 1 -np 2 --no-webui";
    for (const std::string& a : extra_args) command += " '" + a + "'";
    command += " >'" + log_.string() + "' 2>&1";
    pid_ = test::spawn_process({"/bin/sh", "-c", command});
  }
  ~LlamaServer() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    test::wait_process(pid_);
  }
  LlamaServer(const LlamaServer&) = delete;
  LlamaServer& operator=(const LlamaServer&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // Waits for GET /health to answer 200; false (with the log) when it does not within a minute.
  bool wait_ready(std::string* why) {
    httplib::Client client("127.0.0.1", port_);
    client.set_connection_timeout(1, 0);
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (Clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        *why = "llama-server exited:\n" + test::read_text(log_);
        return false;
      }
      if (const auto r = client.Get("/health"); r && r->status == 200) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    *why = "llama-server not ready after 60 s:\n" + test::read_text(log_);
    return false;
  }

 private:
  int port_;
  int pid_ = 0;
  std::filesystem::path log_;
};

std::vector<JudgeItem> llama_items() {
  return {{JudgeRubric::kPlanning, "What should the ego car do?", "Keep going.", "The action is to keep going."},
          {JudgeRubric::kPerceptionVqa, "What are the important objects?", "A truck.", "There is a white truck ahead."},
          {JudgeRubric::kBehavior, "Predict the behavior of the ego vehicle.", "B", "B. Going straight, slowly."}};
}

TEST(JudgeLlamaServer, AGrammarThatForcesAScoreGivesEveryItemOneAndTheCacheAnswersARerun) {
  LlamaServer server({"--grammar", R"(root ::= "Total Score: 7" [0-9])"});
  std::string why;
  ASSERT_TRUE(server.wait_ready(&why)) << why;
  JudgeOptions o;
  o.url = server.url();
  o.model = "tiny";
  o.parallel = 2;
  o.timeout_seconds = 120;
  o.cache_file = test::scratch_dir("judge-llama-cache") / "judge.sqlite";
  const auto items = llama_items();
  JudgeStats stats;
  const auto start = Clock::now();
  const auto scores = judge_all(items, o, &stats);
  std::printf("judge over llama-server (grammar): %.2f s\n", std::chrono::duration<double>(Clock::now() - start).count());
  ASSERT_EQ(scores.size(), items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    ASSERT_TRUE(scores[i].has_value()) << i;
    EXPECT_GE(*scores[i], 70.0) << i;
    EXPECT_LE(*scores[i], 79.0) << i;
  }
  EXPECT_EQ(stats.sent, items.size());
  EXPECT_EQ(stats.missing, 0u);

  JudgeStats rerun;
  EXPECT_EQ(judge_all(items, o, &rerun), scores);
  EXPECT_EQ(rerun.cached, items.size());
  EXPECT_EQ(rerun.sent, 0u);
}

TEST(JudgeLlamaServer, GibberishIsAskedTwiceAndCountedMissingNotZero) {
  LlamaServer server({});
  std::string why;
  ASSERT_TRUE(server.wait_ready(&why)) << why;
  JudgeOptions o;
  o.url = server.url();
  o.model = "tiny";
  o.parallel = 2;
  o.timeout_seconds = 120;
  // Two items: each reply runs to the judge's token cap, twice (about 4 s a pair here).
  auto items = llama_items();
  items.resize(2);
  JudgeStats stats;
  const auto start = Clock::now();
  const auto scores = judge_all(items, o, &stats);
  std::printf("judge over llama-server (gibberish): %.2f s\n", std::chrono::duration<double>(Clock::now() - start).count());
  EXPECT_EQ(scores, std::vector<std::optional<double>>(items.size(), std::nullopt));
  EXPECT_EQ(stats.sent, 2 * items.size());
  EXPECT_EQ(stats.retried, items.size());
  EXPECT_EQ(stats.missing, items.size());
}

}  // namespace
}  // namespace drivevqa
