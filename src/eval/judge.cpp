#include "eval/judge.h"

#include <httplib.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <exception>
#include <mutex>
#include <thread>

#include "util/error.h"
#include "util/interrupt.h"
#include "util/sqlite_statement.h"
#include "util/text.h"

namespace drivevqa {
namespace {

// Room for one short line per criterion and the total; also keeps a babbling judge cheap.
constexpr int kMaxReplyTokens = 256;

// ---------------------------------------------------------------------------------------------
// Rubrics: DriveBench's criteria and weights, in our own words. Every rubric sums to 100.

struct Criterion {
  const char* name;
  int points;
  const char* what;
};

struct Rubric {
  const char* task;  // what the answer is about, for the judge's instructions
  std::vector<Criterion> criteria;
};

const Rubric& rubric_of(JudgeRubric r) {
  static const Rubric perception_mcq{
      "a multiple-choice question about an object seen by the cameras of a driving car, "
      "answered with an option and possibly an explanation",
      {{"Answer correctness", 50, "the chosen option is the one in the reference; a wrong option earns none of these points"},
       {"Visual description", 10, "the object's appearance (category, colour, size) is described as the reference has it"},
       {"Position and motion", 15, "where the object is relative to the ego car and how it moves agree with the reference"},
       {"Scene context", 15, "surrounding traffic, road layout and conditions are used correctly, with nothing invented"},
       {"Clarity", 10, "the answer is direct and easy to check, without padding or contradictions"}}};
  static const Rubric perception_vqa{
      "an open question about the objects around a driving car",
      {{"Objects found", 20, "the objects the reference names are found, and no absent object is claimed"},
       {"Object attributes", 20, "category, colour and state of each object match the reference"},
       {"Positions", 15, "each object's position relative to the ego car (front, back left, ...) is right"},
       {"Motion and status", 15, "whether each object moves, and how, agrees with the reference"},
       {"Faithfulness", 20, "every statement is supported by the reference; invented details cost points"},
       {"Clarity", 10, "the answer is well organised and concise"}}};
  static const Rubric prediction{
      "an open question about what the objects around a driving car will do next",
      {{"Objects concerned", 20, "the answer speaks about the objects the reference names"},
       {"Predicted behaviour", 20, "the predicted future movement or state of each object matches the reference"},
       {"Spatial relations", 15, "positions and paths relative to the ego car are right"},
       {"Reasoning", 15, "the prediction is explained by cues a driver could see (speed, lane, signals)"},
       {"Faithfulness", 20, "every statement is supported by the reference; invented details cost points"},
       {"Clarity", 10, "the answer is well organised and concise"}}};
  static const Rubric planning{
      "an open question about what the ego car should do",
      {{"Action correctness", 40, "the proposed action (or the judgement about an action) matches the reference"},
       {"Reasoning", 20, "the reasons given are those of the reference, or equally valid ones"},
       {"Probability or confidence", 15, "the stated likelihood or confidence agrees with the reference"},
       {"Context and safety", 15, "the surrounding objects and traffic rules are respected; nothing unsafe is proposed"},
       {"Conciseness", 10, "the answer is short and to the point"}}};
  static const Rubric behavior{
      "a multiple-choice question about the ego car's own driving behaviour (direction and speed)",
      {{"Behaviour correctness", 50, "the chosen option, direction and speed are those of the reference"},
       {"Reasoning", 15, "the explanation supports the chosen behaviour with sensible driving cues"},
       {"Scene context", 15, "road layout, traffic and other agents are described correctly"},
       {"Safety awareness", 10, "the behaviour described is safe and lawful"},
       {"Clarity", 10, "the answer is direct and free of contradictions"}}};
  switch (r) {
    case JudgeRubric::kPerceptionMcq: return perception_mcq;
    case JudgeRubric::kPerceptionVqa: return perception_vqa;
    case JudgeRubric::kPrediction: return prediction;
    case JudgeRubric::kPlanning: return planning;
    case JudgeRubric::kBehavior: return behavior;
  }
  return perception_vqa;
}

std::string system_message(JudgeRubric r) {
  const Rubric& rubric = rubric_of(r);
  std::string s = "You grade answers of a driving assistant. The question is ";
  s += rubric.task;
  s += ". Compare the predicted answer with the reference answer, which is correct, and award points:\n";
  int n = 1;
  for (const Criterion& c : rubric.criteria) {
    s += std::to_string(n++) + ". " + c.name + " (" + std::to_string(c.points) + " points): " + c.what + ".\n";
  }
  s += "Write one short line per criterion with the points awarded, then a last line exactly of the form\n"
       "Total Score: N\n"
       "where N is the sum, an integer from 0 to 100.";
  return s;
}

std::string user_message(const JudgeItem& item) {
  return "Question:\n" + item.question + "\n\nReference answer:\n" + item.reference + "\n\nPredicted answer:\n" + item.answer;
}

// ---------------------------------------------------------------------------------------------
// The reply cache: one SQLite connection, shared by the workers under a mutex.

// Statements of the cache: errors name the cache file.
class Statement : public SqliteStatement {
 public:
  Statement(const SqliteDb& db, const char* sql)
      : SqliteStatement(db.get(), sql, ExitCode::kOutput, db.path().string() + ": judge cache") {}
};

// Replies that gave a score, keyed by a hash of (model, prompt); the row keeps both texts, so a
// hash collision reads as a miss. Unscored replies are not kept: a later run asks again.
class ReplyCache {
 public:
  explicit ReplyCache(const std::filesystem::path& path) {
    if (path.empty()) return;
    if (path.has_parent_path()) {
      std::error_code ec;
      std::filesystem::create_directories(path.parent_path(), ec);
    }
    db_.emplace(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, ExitCode::kOutput, "judge cache");
    sqlite3_busy_timeout(db_->get(), 10000);  // another run may be writing the same cache
    db_->exec("PRAGMA journal_mode=WAL");
    db_->exec("CREATE TABLE IF NOT EXISTS judge_replies (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
              "prompt TEXT NOT NULL, reply TEXT NOT NULL)");
  }

  std::optional<std::string> get(const std::string& model, const std::string& prompt) {
    if (!db_) return std::nullopt;
    std::lock_guard lock(mutex_);
    Statement st(*db_, "SELECT model, prompt, reply FROM judge_replies WHERE key = ?");
    st.bind(1, key(model, prompt));
    if (st.step() && st.text(0) == model && st.text(1) == prompt) return st.text(2);
    return std::nullopt;
  }

  void put(const std::string& model, const std::string& prompt, const std::string& reply) {
    if (!db_) return;
    std::lock_guard lock(mutex_);
    Statement st(*db_, "INSERT OR REPLACE INTO judge_replies (key, model, prompt, reply) VALUES (?, ?, ?, ?)");
    st.bind(1, key(model, prompt)).bind(2, model).bind(3, prompt).bind(4, reply);
    st.step();
  }

 private:
  static std::string key(const std::string& model, const std::string& prompt) {
    const std::string model_part = model + '\0';  // so that (model, prompt) pairs cannot run together
    return hex64(fnv1a64(prompt.data(), prompt.size(), fnv1a64(model_part)));
  }

  std::mutex mutex_;
  std::optional<SqliteDb> db_;
};

// ---------------------------------------------------------------------------------------------
// The endpoint.

struct Endpoint {
  std::string url;          // as given, for messages (it never holds the key)
  std::string scheme_host;  // "http://host:port", for httplib::Client
  std::string path;         // {prefix}/v1/chat/completions
};

Endpoint parse_url(const std::string& url) {
  const auto bad = [&](const std::string& why) { return InputError("judge URL '" + url + "': " + why); };
  const size_t sep = url.find("://");
  if (url.empty()) throw InputError("judge URL is empty (expected http://host:port)");
  if (sep == std::string::npos) throw bad("expected http://host:port[/prefix]");
  const std::string scheme = to_lower(url.substr(0, sep));
  if (scheme == "https") {
#ifndef CPPHTTPLIB_OPENSSL_SUPPORT
    throw bad("https is not available (cpp-httplib was built without OpenSSL); use http");
#endif
  } else if (scheme != "http") {
    throw bad("only http:// and https:// are supported");
  }
  const size_t authority_start = sep + 3;
  const size_t slash = url.find('/', authority_start);
  const std::string authority = url.substr(authority_start, slash == std::string::npos ? std::string::npos : slash - authority_start);
  if (authority.find('@') != std::string::npos) {
    // Never echo credentials: they may be in the part we would quote.
    throw InputError("judge URL: credentials in the URL are not supported; pass the API key separately");
  }
  if (authority.empty()) throw bad("no host");
  const size_t colon = authority.back() == ']' ? std::string::npos : authority.rfind(':');  // [IPv6] without a port
  const std::string host = authority.substr(0, colon);
  if (host.empty()) throw bad("no host");
  if (colon != std::string::npos) {
    const std::string port = authority.substr(colon + 1);
    int value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value < 1 || value > 65535) {
      throw bad("bad port '" + port + "'");
    }
  }
  std::string prefix = slash == std::string::npos ? "" : url.substr(slash);
  if (prefix.find_first_of("?#") != std::string::npos) throw bad("a query or fragment is not supported");
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  return {url, scheme + "://" + authority, prefix + "/v1/chat/completions"};
}

enum class Outcome { kReply, kTransient, kRefused, kNotFound, kUnreachable, kRejected };

struct Response {
  Outcome outcome = Outcome::kTransient;
  std::string content;  // kReply: the message text
  std::string detail;   // otherwise: what went wrong, for messages
};

// The message text of a chat completion, or nullopt when the body does not have one.
std::optional<std::string> reply_content(const std::string& body) {
  const std::optional<nlohmann::json> parsed = try_parse_json(body);
  if (!parsed || !parsed->is_object()) return std::nullopt;
  const nlohmann::json& json = *parsed;
  const auto choices = json.find("choices");
  if (choices == json.end() || !choices->is_array() || choices->empty() || !(*choices)[0].is_object()) return std::nullopt;
  const auto message = (*choices)[0].find("message");
  if (message == (*choices)[0].end() || !message->is_object()) return std::nullopt;
  const auto content = message->find("content");
  if (content == message->end() || !content->is_string()) return std::nullopt;
  return content->get<std::string>();
}

// One worker's connection (httplib clients are not shared between threads).
class ChatClient {
 public:
  ChatClient(const Endpoint& endpoint, const JudgeOptions& options) : endpoint_(endpoint), client_(endpoint.scheme_host) {
    const int timeout = std::max(1, options.timeout_seconds);
    client_.set_connection_timeout(std::min(timeout, 30), 0);
    client_.set_read_timeout(timeout, 0);
    client_.set_write_timeout(timeout, 0);
    client_.set_keep_alive(true);
    headers_.emplace("Accept", "application/json");
    if (!options.api_key.empty()) headers_.emplace("Authorization", "Bearer " + options.api_key);
  }

  Response post(const std::string& body) {
    const auto result = client_.Post(endpoint_.path.c_str(), headers_, body, "application/json");
    if (!result) {
      switch (result.error()) {
        case httplib::Error::Connection: return {Outcome::kUnreachable, "", "could not connect"};
        case httplib::Error::SSLConnection: return {Outcome::kUnreachable, "", "TLS connection failed"};
        case httplib::Error::Read: return {Outcome::kTransient, "", "no reply, or it timed out"};
        default: return {Outcome::kTransient, "", "transport error: " + httplib::to_string(result.error())};
      }
    }
    const int status = result->status;
    const std::string detail = "HTTP " + std::to_string(status);
    if (status == 401 || status == 403) return {Outcome::kRefused, "", detail};
    if (status == 404) return {Outcome::kNotFound, "", detail};
    if (status == 429 || status >= 500) return {Outcome::kTransient, "", detail};
    if (status != 200) return {Outcome::kRejected, "", detail + ": " + result->body.substr(0, 200)};
    // A 200 without a message reads as a reply without a score, which is asked again.
    return {Outcome::kReply, reply_content(result->body).value_or(""), detail};
  }

 private:
  const Endpoint& endpoint_;
  httplib::Client client_;
  httplib::Headers headers_;
};

std::string request_body(const JudgeItem& item, const std::string& model) {
  nlohmann::json body;
  body["model"] = model;
  body["messages"] = nlohmann::json::array({{{"role", "system"}, {"content", system_message(item.rubric)}},
                                            {{"role", "user"}, {"content", user_message(item)}}});
  body["temperature"] = 0;
  body["max_tokens"] = kMaxReplyTokens;
  body["stream"] = false;
  // Prompts are the user's text; keep going on stray bytes rather than refusing the whole run.
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The state the workers share.
class JudgeRun {
 public:
  JudgeRun(std::span<const JudgeItem> items, const JudgeOptions& options, ReplyCache& cache, Endpoint endpoint)
      : items_(items), options_(options), cache_(cache), endpoint_(std::move(endpoint)), scores_(items.size()) {}

  // Scores the items in `todo` with `workers` threads; rethrows the first fatal error.
  void run(const std::vector<size_t>& todo, int workers) {
    std::vector<std::thread> threads;
    for (int w = 0; w < workers; ++w) {
      threads.emplace_back([this, &todo] {
        try {
          work(todo);
        } catch (...) {
          std::lock_guard lock(error_mutex_);
          if (!error_) error_ = std::current_exception();
          stop_ = true;
        }
      });
    }
    for (std::thread& t : threads) t.join();
    if (error_) std::rethrow_exception(error_);
    throw_if_interrupted();
  }

  std::vector<std::optional<double>>& scores() { return scores_; }
  std::atomic<size_t> sent{0}, retried{0}, missing{0};

 private:
  void work(const std::vector<size_t>& todo) {
    ChatClient client(endpoint_, options_);
    for (;;) {
      if (stop_ || interrupt_requested()) return;
      const size_t k = next_.fetch_add(1);
      if (k >= todo.size()) return;
      scores_[todo[k]] = score_item(client, todo[k]);
    }
  }

  std::optional<double> score_item(ChatClient& client, size_t i) {
    const JudgeItem& item = items_[i];
    const std::string body = request_body(item, options_.model);
    std::optional<int> score;
    std::optional<std::string> reply;
    for (int attempt = 0; attempt < 2 && !score; ++attempt) {
      if (attempt == 1) ++retried;  // the first reply had no score: ask the same once more
      std::optional<std::string> got = ask(client, body, i);
      if (!got) break;  // transport trouble, already retried and reported
      reply = std::move(got);
      score = parse_total_score(*reply);
    }
    if (!score) {
      ++missing;
      if (reply) spdlog::warn("judge: item {} has no score: no \"Total Score: N\" in \"{}\"", i, reply->substr(0, 80));
      return std::nullopt;
    }
    cache_.put(options_.model, judge_prompt(item), *reply);
    return static_cast<double>(*score);
  }

  // The reply text, or nullopt when the request failed twice. Throws when the endpoint is wrong.
  std::optional<std::string> ask(ChatClient& client, const std::string& body, size_t i) {
    Response r;
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (attempt == 1) std::this_thread::sleep_for(std::chrono::milliseconds(500));
      ++sent;
      r = client.post(body);
      if (r.outcome == Outcome::kReply) {
        reached_ = true;
        return r.content;
      }
      // Until one reply came back, a wrong URL or key is the user's error, not a missing score
      // (a refused connection only once retried: the server may be starting).
      if (!reached_ && (r.outcome != Outcome::kUnreachable || attempt == 1)) fail_if_endpoint_wrong(r);
      if (r.outcome != Outcome::kTransient && r.outcome != Outcome::kUnreachable) break;
    }
    spdlog::warn("judge: item {} has no score: the request to {} failed ({})", i, endpoint_.url, r.detail);
    return std::nullopt;
  }

  void fail_if_endpoint_wrong(const Response& r) const {
    const std::string& url = endpoint_.url;
    switch (r.outcome) {
      case Outcome::kRefused: throw InputError("judge endpoint " + url + " refused the API key (" + r.detail + ")");
      case Outcome::kNotFound:
        throw InputError("judge endpoint " + url + " has no " + endpoint_.path + " (" + r.detail +
                         "); give the base URL, without /v1");
      case Outcome::kUnreachable: throw InputError("cannot reach the judge endpoint " + url + " (" + r.detail + ")");
      default: return;
    }
  }

  std::span<const JudgeItem> items_;
  const JudgeOptions& options_;
  ReplyCache& cache_;
  const Endpoint endpoint_;
  std::vector<std::optional<double>> scores_;
  std::atomic<size_t> next_{0};
  std::atomic<bool> reached_{false}, stop_{false};
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

}  // namespace

std::string_view rubric_name(JudgeRubric r) {
  switch (r) {
    case JudgeRubric::kPerceptionMcq: return "perception_mcq";
    case JudgeRubric::kPerceptionVqa: return "perception_vqa";
    case JudgeRubric::kPrediction: return "prediction";
    case JudgeRubric::kPlanning: return "planning";
    case JudgeRubric::kBehavior: return "behavior";
  }
  return "perception_vqa";
}

std::string judge_prompt(const JudgeItem& item) { return system_message(item.rubric) + "\n\n" + user_message(item); }

std::optional<int> parse_total_score(std::string_view reply) {
  static constexpr std::string_view kLabel = "total score:";
  const std::string lower = to_lower(reply);
  for (size_t at = lower.find(kLabel); at != std::string::npos; at = lower.find(kLabel, at + 1)) {
    size_t p = at + kLabel.size();
    // Whitespace as DriveBench's pattern allows, and Markdown bold ("**Total Score:** 85"), which chat models add.
    while (p < lower.size() && (std::isspace(static_cast<unsigned char>(lower[p])) || lower[p] == '*')) ++p;
    size_t digits = 0;
    while (p + digits < lower.size() && std::isdigit(static_cast<unsigned char>(lower[p + digits]))) ++digits;
    if (digits == 0) continue;  // not a match: look further
    if (digits > 3) return std::nullopt;
    const int value = std::stoi(lower.substr(p, digits));
    if (value > 100) return std::nullopt;
    return value;
  }
  return std::nullopt;
}

std::vector<std::optional<double>> judge_all(std::span<const JudgeItem> items, const JudgeOptions& options,
                                             JudgeStats* stats) {
  Endpoint endpoint = parse_url(options.url);
  ReplyCache cache(options.cache_file);
  JudgeRun run(items, options, cache, std::move(endpoint));

  // Cached replies first, in this thread: only the rest goes to the workers.
  std::vector<size_t> todo;
  size_t cached = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const std::optional<std::string> reply = cache.get(options.model, judge_prompt(items[i]));
    const std::optional<int> score = reply ? parse_total_score(*reply) : std::nullopt;
    if (score) {
      run.scores()[i] = static_cast<double>(*score);
      ++cached;
    } else {
      todo.push_back(i);
    }
  }

  const int workers = static_cast<int>(std::min<size_t>(static_cast<size_t>(std::max(1, options.parallel)), todo.size()));
  const auto write_stats = [&] {
    if (stats) *stats = {run.sent.load(), cached, run.retried.load(), run.missing.load()};
  };
  try {
    run.run(todo, workers);
  } catch (...) {
    write_stats();
    throw;
  }
  write_stats();
  return std::move(run.scores());
}

}  // namespace drivevqa
