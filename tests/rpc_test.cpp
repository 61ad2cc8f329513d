// One model over several hosts (run/ask --rpc): the tiny model's text layers on two real rpc-server
// processes of the engine's build, on this machine, give the answers of the local run; a server
// that is not there is refused at start, naming it.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <thread>

#include "support/test_support.h"

namespace drivevqa {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A socket bound to a port of 127.0.0.1 the kernel picks, not listening: a connection to it is
// refused for as long as this lives.
class BoundPort {
 public:
  BoundPort() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof address;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&address), size) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
      throw std::runtime_error("cannot bind a port of 127.0.0.1");
    }
    port_ = ntohs(address.sin_port);
  }
  ~BoundPort() {
    if (fd_ >= 0) ::close(fd_);
  }
  BoundPort(const BoundPort&) = delete;
  BoundPort& operator=(const BoundPort&) = delete;
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_;
  int port_ = 0;
};

bool accepts_connections(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  if (fd >= 0) ::close(fd);
  return ok;
}

// A real rpc-server on 127.0.0.1, killed when this goes. Its port is one the kernel has just given
// out and taken back: another process may take it first, and the server then exits at once, so a
// start that does not come up is tried again on another port.
class RpcServer {
 public:
  RpcServer() {
    for (int attempt = 0; attempt < 5; ++attempt) {
      const int port = test::free_tcp_port();
      pid_ = test::spawn_process({test::rpc_server_binary(), "-H", "127.0.0.1", "-p", std::to_string(port), "-t", "1"});
      if (wait_until_listening(port)) {
        port_ = port;
        return;
      }
      stop();
    }
    throw std::runtime_error(test::rpc_server_binary() + " did not start listening (5 ports tried)");
  }
  ~RpcServer() { stop(); }
  RpcServer(const RpcServer&) = delete;
  RpcServer& operator=(const RpcServer&) = delete;
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  bool exited() {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
    pid_ = -1;
    return true;
  }
  // The server serves one client at a time; this probe is one, closed at once.
  bool wait_until_listening(int port) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (exited()) return false;
      if (accepts_connections(port)) {
        std::this_thread::sleep_for(50ms);
        return !exited();  // listening is the server itself, not another process on the port
      }
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    test::wait_process(pid_);
    pid_ = -1;
  }
  int pid_ = -1;
  int port_ = 0;
};


// `verbose`: -v, the engine's log on stderr.
std::vector<std::string> ask_command(const std::vector<std::string>& extra, bool verbose = false) {
  std::vector<std::string> argv = {test::drivevqa_binary()};
  if (verbose) argv.push_back("-v");
  argv.insert(argv.end(), {"ask", "--model", test::tiny_model_dir().string(), "--images", test::images_arg(test::first_frame_images()), "--max_new_tokens",
                           "24", "--image_max_tokens", "64", "-t", "1"});
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back("What are the important objects in the current scene?");
  return argv;
}

std::vector<std::string> run_command(const fs::path& out, const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {test::drivevqa_binary(), "run", "--json_file", (test::demo_dir() / "questions.json").string(),
                                   "--image_base_dir", test::demo_dir().string(), "--output_file", out.string(),
                                   "--model_7b", test::tiny_model_dir().string(), "--limit", "5", "--dtype", "fp16",
                                   "--image_max_tokens", "64", "--max_new_tokens_cap", "12", "-t", "1"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

// Two servers for the suite: each test's processes connect and leave in turn.
class Rpc : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (test::rpc_server_binary().empty()) return;
    first_ = std::make_unique<RpcServer>();
    second_ = std::make_unique<RpcServer>();
  }
  static void TearDownTestSuite() {
    first_.reset();
    second_.reset();
  }
  void SetUp() override {
    if (test::rpc_server_binary().empty()) GTEST_SKIP() << "the engine was built without the RPC backend (-DDRIVEVQA_RPC=OFF)";
  }
  static std::string servers() { return first_->endpoint() + "," + second_->endpoint(); }

  static std::unique_ptr<RpcServer> first_, second_;
};
std::unique_ptr<RpcServer> Rpc::first_, Rpc::second_;

TEST_F(Rpc, AskGivesTheLocalAnswerWithTheLayersOnTwoServers) {
  const auto local = test::run_process(ask_command({}));
  ASSERT_EQ(local.exit_code, 0) << local.err;
  // -v: the engine's log says where the weights went.
  const auto remote = test::run_process(ask_command({"--rpc", servers()}, true));
  ASSERT_EQ(remote.exit_code, 0) << remote.err;
  std::printf("local: %sover RPC: %s", local.out.c_str(), remote.out.c_str());
  EXPECT_GT(local.out.size(), 10u);
  EXPECT_EQ(remote.out, local.out);
  // Both servers hold weights (the engine names a server's first device's buffers RPC0[host:port]).
  for (const std::string& server : {first_->endpoint(), second_->endpoint()}) {
    EXPECT_NE(remote.err.find("RPC server " + server + ": device"), std::string::npos) << server;
    EXPECT_NE(remote.err.find("RPC0[" + server + "] model buffer size"), std::string::npos) << server;
  }
}

TEST_F(Rpc, RunWritesTheLocalResultsWithTheLayersOnTwoServers) {
  if (test::kSanitizedBuild) {
    GTEST_SKIP() << "two demo runs under the sanitizers; the ask test covers the RPC path there";
  }
  const auto dir = test::scratch_dir("rpc-run");
  const auto local = test::run_process(run_command(dir / "local.json", {}));
  ASSERT_EQ(local.exit_code, 0) << local.err;
  const auto remote = test::run_process(run_command(dir / "rpc.json", {"--rpc", servers()}));
  ASSERT_EQ(remote.exit_code, 0) << remote.err;
  const std::string expected = test::read_text(dir / "local.json");
  EXPECT_GT(expected.size(), 100u);
  EXPECT_EQ(test::read_text(dir / "rpc.json"), expected);
}

TEST_F(Rpc, AnUnreachableServerIsRefusedAtStartNamingIt) {
  const BoundPort closed;  // bound, not listening: refused
  const auto dir = test::scratch_dir("rpc-unreachable");
  const auto started = std::chrono::steady_clock::now();
  // The second of two servers is missing: the message names it, not the first.
  const auto ask = test::run_process(ask_command({"--rpc", first_->endpoint() + "," + closed.endpoint()}));
  EXPECT_EQ(ask.exit_code, 4) << ask.err;
  EXPECT_NE(ask.err.find("RPC server " + closed.endpoint() + " (--rpc) cannot be reached"), std::string::npos) << ask.err;
  EXPECT_EQ(ask.out, "");
  const auto run = test::run_process(run_command(dir / "results.json", {"--rpc", closed.endpoint()}));
  EXPECT_EQ(run.exit_code, 4) << run.err;
  EXPECT_NE(run.err.find(closed.endpoint()), std::string::npos) << run.err;
  // Before any work: nothing written, not even the journal.
  EXPECT_FALSE(fs::exists(dir / "results.json"));
  EXPECT_TRUE(fs::is_empty(dir));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 30s);
}

TEST_F(Rpc, AMalformedServerListIsAUsageError) {
  const auto dir = test::scratch_dir("rpc-usage");
  for (const std::string bad : {"127.0.0.1", "127.0.0.1:", ":50052", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:50x",
                                "[::1]:50052", "127.0.0.1:50052,", "127.0.0.1:50052,127.0.0.1:50052"}) {
    const auto ask = test::run_process(ask_command({"--rpc", bad}));
    EXPECT_EQ(ask.exit_code, 2) << bad << ": " << ask.err;
    EXPECT_NE(ask.err.find("--rpc"), std::string::npos) << ask.err;
  }
  const auto run = test::run_process(run_command(dir / "results.json", {"--rpc", "host-without-port"}));
  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_NE(run.err.find("'host-without-port'"), std::string::npos) << run.err;
  // The layers cannot be both here and on the servers.
  const auto cpu = test::run_process(run_command(dir / "results.json", {"--rpc", servers(), "--device_map", "cpu"}));
  EXPECT_EQ(cpu.exit_code, 2) << cpu.err;
  const auto none = test::run_process(ask_command({"--rpc", servers(), "--n_gpu_layers", "0"}));
  EXPECT_EQ(none.exit_code, 2) << none.err;
  EXPECT_TRUE(fs::is_empty(dir));
}

}  // namespace
}  // namespace drivevqa
