// `drivevqa serve`: an OpenAI-compatible HTTP endpoint over the run pipeline.
//
//   POST /v1/chat/completions   a Track 1 question about camera images (serve/chat_request.h),
//                               answered as `run` answers it; "stream": true for server-sent events
//   GET  /v1/models             drivevqa (routed as run routes), drivevqa-7b / drivevqa-72b (forced)
//   GET  /health                200 once the models are loaded
//   GET  /metrics               Prometheus text: requests by status, queue depth, tokens, prefix-cache hits
//
// What must hold: every request gets one reply, and a bad one a 4xx with a JSON error body, after
// which the server goes on serving; at most max_jobs requests wait or run (more get 429 with
// Retry-After); with an API key every /v1 and /metrics request without it gets 401; listening on
// an address other than loopback needs a key (refused at start otherwise). After stop() no new
// request is taken and those in flight get their answers.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "pipeline/runner.h"
#include "serve/chat_request.h"

namespace httplib {
struct Response;
class DataSink;
}  // namespace httplib

namespace drivevqa {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;              // empty: no key asked (loopback only)
  RequestLimits limits;
  size_t max_jobs = 64;             // requests waiting or running
  size_t max_body_bytes = size_t{64} << 20;
  int request_timeout_seconds = 600;
  size_t http_threads = 0;          // 0: max_jobs + 4
  std::filesystem::path media_dir;  // the request images' folder (created; removed at the end)
};

class Scheduler;
class MediaStore;
class ServeJob;

class Server {
 public:
  // Loads the models (throws ModelError / MemoryError as run does) and checks the options
  // (UsageError: a non-loopback host without a key).
  Server(RunOptions run, ServeOptions options);
  ~Server();

  // Listens until stop(); throws OutputError when the address cannot be bound. The port actually
  // bound (for port 0) is known once ready() is true.
  void listen();
  void stop();
  bool ready() const { return port_ > 0; }
  int port() const { return port_; }

 private:
  void chat_completion(const std::string& body, httplib::Response& res);
  void stream_reply(ServeJob& job, const nlohmann::ordered_json& head, std::chrono::steady_clock::time_point deadline,
                    bool include_usage, httplib::DataSink& sink);
  std::string metrics_text();

  struct Http;
  std::unique_ptr<Http> http_;
  std::unique_ptr<MediaStore> media_;
  std::unique_ptr<Scheduler> scheduler_;
  ServeOptions options_;
  std::atomic<int> port_{0};
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> listening_{false};
  std::atomic<size_t> next_item_{0};
  std::mutex status_mutex_;
  std::map<int, size_t> replies_by_status_;
};

// Whether `host` is a loopback address or name (127.0.0.0/8, ::1, localhost).
bool is_loopback_host(const std::string& host);

}  // namespace drivevqa
