#include "serve/server.h"

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <arpa/inet.h>

#include <chrono>
#include <thread>

#include "serve/media_store.h"
#include "serve/scheduler.h"
#include "util/error.h"

namespace drivevqa {
namespace {

using ReplyJson = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

// Unleased request images kept for later requests about the same frames (a frame is six).
constexpr size_t kIdleMediaFiles = 96;

void reply_error(httplib::Response& res, int status, const std::string& message, const std::string& type) {
  res.status = status;
  res.set_content(error_body(message, type), "application/json");
}

std::string dump(const ReplyJson& j) { return j.dump(-1, ' ', false, ReplyJson::error_handler_t::replace); }

long long unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The model a request names: nullopt = routed as run routes; throws ApiError 404 for one not served.
std::optional<ModelSize> requested_model(const std::string& name, const Scheduler& scheduler) {
  if (name == "drivevqa") return std::nullopt;
  for (const ModelSize size : {ModelSize::k7B, ModelSize::k72B}) {
    if (name == (size == ModelSize::k7B ? "drivevqa-7b" : "drivevqa-72b")) {
      if (scheduler.has_model(size)) return size;
      throw ApiError(404, "invalid_request_error", "the model '" + name + "' is not loaded on this server (see GET /v1/models)");
    }
  }
  throw ApiError(404, "invalid_request_error", "the model '" + name + "' does not exist; this server has drivevqa, drivevqa-7b "
                                               "and drivevqa-72b (see GET /v1/models)");
}

ReplyJson usage_json(const ItemResult& r) {
  return ReplyJson{{"prompt_tokens", r.prompt_tokens},
              {"completion_tokens", r.generated_tokens},
              {"total_tokens", r.prompt_tokens + r.generated_tokens},
              {"prompt_tokens_details", {{"cached_tokens", r.cached_prompt_tokens}}}};
}

const char* finish_reason(const ServeJob::Outcome& outcome) {
  return outcome.result && outcome.result->cut_by_budget && !outcome.stopped ? "length" : "stop";
}

// drivevqa's own fields beside OpenAI's: how the question was routed and answered.
ReplyJson route_json(const ItemResult& r) {
  return ReplyJson{{"subtask", std::string(subtask_name(r.subtask))}, {"model_used", r.model_used}};
}

std::string sse(const ReplyJson& chunk) { return "data: " + dump(chunk) + "\n\n"; }

}  // namespace

struct Server::Http {
  httplib::Server server;
};

bool is_loopback_host(const std::string& host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  in_addr v4{};
  return inet_pton(AF_INET, host.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

Server::Server(RunOptions run, ServeOptions options) : http_(std::make_unique<Http>()), options_(std::move(options)) {
  if (!is_loopback_host(options_.host) && options_.api_key.empty()) {
    throw UsageError("--host " + options_.host + " is not a loopback address: serving beyond this machine needs an API key "
                     "(--api_key_env NAME, the key in that environment variable)");
  }
  media_ = std::make_unique<MediaStore>(options_.media_dir, kIdleMediaFiles);
  scheduler_ = std::make_unique<Scheduler>(std::move(run), options_.max_jobs);

  httplib::Server& svr = http_->server;
  const size_t threads = options_.http_threads ? options_.http_threads : options_.max_jobs + 4;
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  svr.set_payload_max_length(options_.max_body_bytes);
  svr.set_error_handler([max = options_.max_body_bytes](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;  // a handler's own JSON error
    const std::string message = res.status == 413   ? "the request body is larger than this server's limit of " +
                                                          std::to_string(max >> 20) + " MB"
                                : res.status == 404 ? "no such endpoint"
                                                    : "the request could not be read";
    res.set_content(error_body(message, "invalid_request_error"), "application/json");
  });
  svr.set_logger([this](const httplib::Request&, const httplib::Response& res) {
    std::lock_guard lock(status_mutex_);
    ++replies_by_status_[res.status];
  });
  svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    const bool guarded = req.path.starts_with("/v1/") || req.path == "/metrics";
    if (options_.api_key.empty() || !guarded || req.get_header_value("Authorization") == "Bearer " + options_.api_key) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    reply_error(res, 401, "a valid API key is needed (Authorization: Bearer <key>)", "authentication_error");
    return httplib::Server::HandlerResponse::Handled;
  });

  svr.Get("/health", [](const httplib::Request&, httplib::Response& res) { res.set_content("{\"status\":\"ok\"}", "application/json"); });
  svr.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    ReplyJson data = ReplyJson::array();
    const auto add = [&](const char* id) { data.push_back({{"id", id}, {"object", "model"}, {"created", 0}, {"owned_by", "drivevqa"}}); };
    add("drivevqa");
    if (scheduler_->has_model(ModelSize::k7B)) add("drivevqa-7b");
    if (scheduler_->has_model(ModelSize::k72B)) add("drivevqa-72b");
    res.set_content(dump(ReplyJson{{"object", "list"}, {"data", data}}), "application/json");
  });
  svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) { res.set_content(metrics_text(), "text/plain; version=0.0.4"); });
  svr.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    try {
      chat_completion(req.body, res);
    } catch (const ApiError& e) {
      reply_error(res, e.status(), e.what(), e.type());
    } catch (const Error& e) {
      reply_error(res, 500, e.what(), "server_error");
    } catch (const std::bad_alloc&) {
      reply_error(res, 503, "out of memory while reading the request", "server_error");
    }
  });
}

Server::~Server() = default;

void Server::chat_completion(const std::string& body, httplib::Response& res) {
  // Leases on images the store holds already, taken while the request is read (one per image part,
  // null for new bytes): those are neither decoded nor looked up again.
  std::vector<std::unique_ptr<MediaStore::Lease>> leases;
  ChatRequest request = parse_chat_request(body, options_.limits, [&](const std::vector<uint8_t>& bytes) {
    leases.push_back(media_->lease_if_held(bytes));
    return leases.back() != nullptr;
  });
  ItemRequest item_request;
  item_request.model = requested_model(request.model, *scheduler_);
  item_request.max_new_tokens = request.max_tokens;
  if (request.temperature) {
    GenerationParams sampling;
    sampling.do_sample = *request.temperature > 0;
    sampling.temperature = *request.temperature;
    sampling.top_p = request.top_p.value_or(1.0f);
    sampling.seed = request.seed.value_or(GenerationParams{}.seed);
    item_request.sampling = sampling;
  }
  QuestionItem item;
  item.index = next_item_++;
  item.question = request.question;
  item.category = request.category;
  item.original = ReplyJson{{"question", request.question}};
  leases.resize(request.images.size());
  for (size_t i = 0; i < request.images.size(); ++i) {
    if (!leases[i]) leases[i] = media_->put(request.images[i].bytes);
    const std::string camera = i < kCameraOrder.size() ? std::string(kCameraOrder[i]) : "IMAGE_" + std::to_string(i + 1);
    item.images.push_back({camera, leases[i]->path()});
  }
  request.images.clear();  // their bytes are in the store
  auto job = std::make_shared<ServeJob>(std::move(item), std::move(item_request), request.stop, std::move(leases));
  if (!scheduler_->submit(job)) {
    res.set_header("Retry-After", "1");
    throw ApiError(429, "rate_limit_error", "the server is busy (" + std::to_string(options_.max_jobs) + " requests waiting or running); retry shortly");
  }
  const auto deadline = Clock::now() + std::chrono::seconds(options_.request_timeout_seconds);
  const std::string id = "chatcmpl-drivevqa-" + std::to_string(job->item().index);
  const ReplyJson head{{"id", id}, {"object", "chat.completion.chunk"}, {"created", unix_seconds()}, {"model", request.model}};
  if (request.stream) {
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider("text/event-stream", [this, job, head, deadline, include_usage = request.include_usage](
                                                              size_t, httplib::DataSink& sink) {
      stream_reply(*job, head, deadline, include_usage, sink);
      return true;
    });
    return;
  }
  if (!job->wait(deadline)) {
    job->cancel();
    throw ApiError(504, "timeout_error", "no answer within " + std::to_string(options_.request_timeout_seconds) + " s (--request_timeout)");
  }
  const ServeJob::Outcome outcome = job->outcome();
  if (!outcome.result) throw ApiError(500, "server_error", outcome.error);
  const ItemResult& r = *outcome.result;
  ReplyJson reply{{"id", id}, {"object", "chat.completion"}, {"created", head["created"]}, {"model", request.model}};
  reply["choices"] = ReplyJson::array({ReplyJson{{"index", 0},
                                       {"message", {{"role", "assistant"}, {"content", r.answer}}},
                                       {"finish_reason", finish_reason(outcome)}}});
  reply["usage"] = usage_json(r);
  reply["drivevqa"] = route_json(r);
  res.set_content(dump(reply), "application/json");
}

// Server-sent events: a first chunk with the role, a chunk per growth of the settled text, the
// rest and the finish reason when the answer is in, usage when asked, then [DONE].
void Server::stream_reply(ServeJob& job, const ReplyJson& head, Clock::time_point deadline, bool include_usage, httplib::DataSink& sink) {
  const auto send = [&](const ReplyJson& delta, const ReplyJson& finish) {
    ReplyJson chunk = head;
    chunk["choices"] = ReplyJson::array({ReplyJson{{"index", 0}, {"delta", delta}, {"finish_reason", finish}}});
    const std::string text = sse(chunk);
    return sink.write(text.data(), text.size());
  };
  std::string sent;
  bool open = send(ReplyJson{{"role", "assistant"}, {"content", ""}}, nullptr);
  std::string text;
  while (open && !job.wait(Clock::now(), &text)) {
    if (text.size() > sent.size()) {
      open = send(ReplyJson{{"content", text.substr(sent.size())}}, nullptr);
      sent = text;
    }
    if (Clock::now() >= deadline) break;
    job.wait_for_more(sent.size(), std::min(deadline, Clock::now() + std::chrono::seconds(1)));
  }
  if (!open || !job.wait(Clock::now())) {
    job.cancel();  // the client left, or the time is up
    if (open) {
      const std::string error = "data: " + error_body("no answer within the request timeout", "timeout_error") + "\n\ndata: [DONE]\n\n";
      sink.write(error.data(), error.size());
    }
    sink.done();
    return;
  }
  const ServeJob::Outcome outcome = job.outcome();
  if (!outcome.result) {
    const std::string error = "data: " + error_body(outcome.error, "server_error") + "\n\ndata: [DONE]\n\n";
    sink.write(error.data(), error.size());
    sink.done();
    return;
  }
  const std::string& answer = outcome.result->answer;
  if (!answer.starts_with(sent)) {
    // What was streamed is not the answer's start: a 72B failure answered by the 7B model, or a
    // self-consistency vote chose another sample. The client is told rather than sent a mix.
    const std::string error = "data: " + error_body("the answer changed after streaming began (answered by the 7B fallback, or "
                                                    "chosen by a self-consistency vote); ask again without stream",
                                                    "server_error") +
                              "\n\ndata: [DONE]\n\n";
    sink.write(error.data(), error.size());
    sink.done();
    return;
  }
  if (answer.size() > sent.size()) send(ReplyJson{{"content", answer.substr(sent.size())}}, nullptr);
  send(ReplyJson::object(), finish_reason(outcome));
  if (include_usage) {
    ReplyJson chunk = head;
    chunk["choices"] = ReplyJson::array();
    chunk["usage"] = usage_json(*outcome.result);
    const std::string text = sse(chunk);
    sink.write(text.data(), text.size());
  }
  sink.write("data: [DONE]\n\n", 14);
  sink.done();
}

std::string Server::metrics_text() {
  const SchedulerSnapshot s = scheduler_->snapshot();
  std::string text;
  const auto metric = [&](const char* name, const char* type, const char* help, double value) {
    text += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + " " + std::to_string(value) + "\n";
  };
  text += "# HELP drivevqa_requests_total Replies sent, by HTTP status.\n# TYPE drivevqa_requests_total counter\n";
  {
    std::lock_guard lock(status_mutex_);
    for (const auto& [status, count] : replies_by_status_) {
      text += "drivevqa_requests_total{status=\"" + std::to_string(status) + "\"} " + std::to_string(count) + "\n";
    }
  }
  metric("drivevqa_queue_depth", "gauge", "Requests waiting for the engine.", static_cast<double>(s.queued));
  metric("drivevqa_running_requests", "gauge", "Requests in the engine's current round.", static_cast<double>(s.running));
  metric("drivevqa_answered_total", "counter", "Requests answered.", static_cast<double>(s.answered));
  metric("drivevqa_failed_total", "counter", "Requests the engine could not answer.", static_cast<double>(s.failed));
  metric("drivevqa_generated_tokens_total", "counter", "Answer tokens generated.", static_cast<double>(s.generated_tokens));
  metric("drivevqa_prompt_tokens_total", "counter", "Prompt tokens of answered requests.", static_cast<double>(s.prompt_tokens));
  metric("drivevqa_cached_prompt_tokens_total", "counter", "Of those, tokens of a prefix already in the cache.",
         static_cast<double>(s.cached_prompt_tokens));
  metric("drivevqa_tokens_per_second", "gauge", "Generated tokens per second of engine time so far.",
         s.busy_seconds > 0 ? static_cast<double>(s.generated_tokens) / s.busy_seconds : 0.0);
  metric("drivevqa_prefix_cache_hits_total", "counter", "Answered requests whose frame prefix (images and system turn) was "
         "evaluated for another request.", static_cast<double>(s.prefix_cache_hits));
  metric("drivevqa_prefix_evaluations_total", "counter", "Frame prefixes evaluated.", static_cast<double>(s.prefix_evaluations));
  metric("drivevqa_images_encoded_total", "counter", "Images run through the vision tower.", static_cast<double>(s.images_encoded));
  metric("drivevqa_rounds_total", "counter", "Engine rounds (each answers every request waiting).", static_cast<double>(s.rounds));
  metric("drivevqa_joined_requests_total", "counter", "Requests that joined the decoding of a round under way.",
         static_cast<double>(s.joined));
  metric("drivevqa_deferred_requests_total", "counter", "Requests that arrived during a round and waited for the next "
         "(their frame was not held).", static_cast<double>(s.deferred));
  metric("drivevqa_decode_calls_total", "counter", "Engine batches of questions (one step of every running answer).",
         static_cast<double>(s.decode_calls));
  return text;
}

void Server::listen() {
  httplib::Server& svr = http_->server;
  const int port = options_.port == 0 ? svr.bind_to_any_port(options_.host) : (svr.bind_to_port(options_.host, options_.port) ? options_.port : -1);
  if (port < 0) throw OutputError("cannot listen on " + options_.host + ":" + std::to_string(options_.port) + " (in use, or not an address of this machine)");
  std::thread engine([this] { scheduler_->run(); });
  struct JoinEngine {  // also when listening throws (e.g. no thread for the pool)
    Scheduler& scheduler;
    std::thread& engine;
    ~JoinEngine() {
      scheduler.stop();
      engine.join();
    }
  } join{*scheduler_, engine};
  port_ = port;
  spdlog::info("serving on http://{}:{} (OpenAI-compatible: POST /v1/chat/completions)", options_.host, port);
  listening_ = true;
  if (!stop_requested_) svr.listen_after_bind();  // returns after stop(), once the connections' handlers are done
  listening_ = false;
}

void Server::stop() {
  stop_requested_ = true;
  // httplib's stop() acts only on a server already running: a stop that comes while listening
  // starts waits for it, so it is not lost.
  while (listening_ && !http_->server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  http_->server.stop();
}

}  // namespace drivevqa
