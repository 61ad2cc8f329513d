// serve: the run pipeline behind an OpenAI-compatible HTTP endpoint (serve/server.h).
#include <spdlog/spdlog.h>

#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <functional>
#include <mutex>
#include <cstdlib>
#include <thread>

#include "cli/commands.h"
#include "cli/run_flags.h"
#include "serve/server.h"
#include "util/error.h"

namespace drivevqa {
namespace {

struct ServeArgs {
  RunArgs run;
  ServeOptions serve;
  std::string api_key_env, allowed_media_dir;
  int max_body_mb = 64;
};

// SIGINT / SIGTERM: stop taking requests and let those in flight finish; a second one exits at once.
// The signals are blocked before the models load (the engine's threads inherit the mask) and
// taken by one thread with sigwait.
class StopOnSignal {
 public:
  StopOnSignal() {
    sigemptyset(&signals_);
    for (const int s : {SIGINT, SIGTERM, SIGUSR1}) sigaddset(&signals_, s);  // SIGUSR1: our own wake-up at the end
    pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
  }
  void start(std::function<void()> stop) {
    stop_ = std::move(stop);
    waiter_ = std::thread([this] {
      int signal = 0;
      sigwait(&signals_, &signal);
      if (signal == SIGUSR1) return;
      spdlog::info("stopping: no new requests; those in flight finish (a second signal exits now)");
      {
        std::lock_guard lock(mutex_);
        if (stop_) stop_();
      }
      sigwait(&signals_, &signal);
      if (signal != SIGUSR1) _exit(130);
    });
  }
  // Before what `stop` acts on is gone.
  void disarm() {
    std::lock_guard lock(mutex_);
    stop_ = nullptr;
  }
  ~StopOnSignal() {
    if (!waiter_.joinable()) return;
    pthread_kill(waiter_.native_handle(), SIGUSR1);
    waiter_.join();
  }

 private:
  sigset_t signals_{};
  std::mutex mutex_;
  std::function<void()> stop_;
  std::thread waiter_;
};

}  // namespace

CommandAction add_serve_command(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand("serve", "Answer questions over HTTP with the OpenAI chat-completions API "
                                              "(POST /v1/chat/completions), with run's routing, prompts and frame sharing");
  register_run_flags(*cmd, a->run, RunFlagScope::kServe);
  cmd->add_option("--host", a->serve.host, "Address to listen on (anything but loopback needs --api_key_env)")->capture_default_str();
  cmd->add_option("--port", a->serve.port, "Port (0: any free one, logged)")->capture_default_str()->check(CLI::Range(0, 65535));
  cmd->add_option("--api_key_env,--api-key-env", a->api_key_env,
                  "Name of the environment variable holding the API key clients must send (Authorization: Bearer KEY)");
  cmd->add_option("--allowed_media_dir,--allowed-media-dir", a->allowed_media_dir,
                  "Folder whose files requests may name as file:// images (default: file:// refused)");
  cmd->add_option("--max_queue,--max-queue", a->serve.max_jobs, "Requests waiting or running at once; more get 429")
      ->capture_default_str()->check(CLI::Range(size_t{1}, size_t{4096}));
  cmd->add_option("--max_body_mb,--max-body-mb", a->max_body_mb, "Largest request body, in MB (413 above)")
      ->capture_default_str()->check(CLI::Range(1, 4096));
  cmd->add_option("--request_timeout,--request-timeout", a->serve.request_timeout_seconds,
                  "Seconds a request may wait for its answer (504 after)")->capture_default_str()->check(CLI::Range(1, 86400));
  cmd->add_option("--max_tokens_limit,--max-tokens-limit", a->serve.limits.max_tokens, "Most max_tokens a request may ask for")
      ->capture_default_str()->check(CLI::Range(1, 1 << 20));
  return [a] {
    ServeOptions serve = a->serve;
    serve.limits.max_images = static_cast<size_t>(a->run.max_images);
    serve.limits.allowed_media_dir = a->allowed_media_dir;
    serve.max_body_bytes = static_cast<size_t>(a->max_body_mb) << 20;
    if (!a->api_key_env.empty()) {
      const char* key = std::getenv(a->api_key_env.c_str());
      if (!key || !*key) throw UsageError("--api_key_env " + a->api_key_env + ": that environment variable is not set or empty");
      serve.api_key = key;
    }
    if (!a->allowed_media_dir.empty() && !std::filesystem::is_directory(a->allowed_media_dir)) {
      throw UsageError("--allowed_media_dir " + a->allowed_media_dir + ": not a folder");
    }
    StopOnSignal on_signal;  // before anything may start a thread (the engine's backends, --rpc)
    RunOptions run = run_options(a->run);
    // The request images' folder: made by mkdtemp (mode 0700, a fresh name), removed at the end.
    std::string media = (std::filesystem::temp_directory_path() / "drivevqa-serve-XXXXXX").string();
    if (!mkdtemp(media.data())) throw OutputError(media + ": cannot make the request image folder (" + std::strerror(errno) + ")");
    serve.media_dir = media;
    struct RemoveFolder {  // also when the server cannot start (the store removes it otherwise)
      std::filesystem::path path;
      ~RemoveFolder() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
      }
    } remove_media{media};
    Server server(std::move(run), std::move(serve));
    on_signal.start([&server] { server.stop(); });
    try {
      server.listen();
    } catch (...) {
      on_signal.disarm();
      throw;
    }
    on_signal.disarm();
    spdlog::info("stopped");
  };
}

}  // namespace drivevqa
