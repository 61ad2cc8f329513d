#include "engine/rpc_devices.h"

#include <ggml-rpc.h>
#include <spdlog/spdlog.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "engine/model.h"
#include "util/error.h"
#include "util/interrupt.h"

namespace drivevqa {
namespace {

// How long a server may take to accept a TCP connection before it counts as unreachable: the
// engine's own connect blocks for the kernel's SYN retries (minutes) on a silent host.
constexpr std::chrono::seconds kConnectTimeout{5};

bool all_digits(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

class SocketFd {
 public:
  explicit SocketFd(int fd) : fd_(fd) {}
  ~SocketFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  SocketFd(const SocketFd&) = delete;
  SocketFd& operator=(const SocketFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// "" when a TCP connection to `address` is accepted within the deadline, else why not.
std::string try_connect(const sockaddr_in& address, std::chrono::steady_clock::time_point deadline) {
  SocketFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return std::strerror(errno);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) return "";
  if (errno != EINPROGRESS) return std::strerror(errno);
  while (true) {
    // Waits of at most 100 ms, so that Ctrl-C is seen (util/interrupt.h).
    pollfd p{fd.get(), POLLOUT, 0};
    const int ready = ::poll(&p, 1, 100);
    throw_if_interrupted();
    if (ready < 0 && errno != EINTR) return std::strerror(errno);
    if (ready > 0) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      return "no answer within " + std::to_string(kConnectTimeout.count()) + " s";
    }
  }
  int error = 0;
  socklen_t size = sizeof error;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &size) != 0) return std::strerror(errno);
  return error == 0 ? "" : std::strerror(error);
}

// Throws ModelError naming `server` unless it accepts a TCP connection. IPv4 only, as the engine's
// client resolves hosts (gethostbyname).
void require_reachable(const std::string& server) {
  const size_t colon = server.rfind(':');
  const std::string host = server.substr(0, colon), port = server.substr(colon + 1);
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    throw ModelError("RPC server " + server + " (--rpc): cannot resolve the host '" + host + "' (" + ::gai_strerror(rc) + ")");
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, &::freeaddrinfo);
  const auto deadline = std::chrono::steady_clock::now() + kConnectTimeout;
  std::string why;
  for (const addrinfo* a = addresses.get(); a; a = a->ai_next) {
    why = try_connect(*reinterpret_cast<const sockaddr_in*>(a->ai_addr), deadline);
    if (why.empty()) return;
  }
  throw ModelError("RPC server " + server + " (--rpc) cannot be reached: " + why +
                   "; start llama.cpp's rpc-server there (ggml-rpc-server -H <address> -p " + port +
                   ", from the engine's build) or leave it out of --rpc");
}

// While the engine connects to a server its failures abort the process (GGML_ABORT): the abort is
// worded as a model error naming the server, exit 4, instead of the general engine-abort message.
std::string& server_connecting() {
  static std::string server;
  return server;
}

void on_connect_abort(const char* message) {
  std::string text = message;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  // The engine's message opens with its source file and line ("/.../ggml-rpc.cpp:354: ").
  if (const size_t at = text.find(".cpp:"); at != std::string::npos) {
    if (const size_t end = text.find(": ", at + 5); end != std::string::npos) text.erase(0, end + 2);
  }
  std::fprintf(stderr,
               "drivevqa: error: RPC server %s (--rpc): the engine's connection failed: %s (is it an rpc-server of "
               "the same llama.cpp version as this drivevqa's engine?)\n",
               server_connecting().c_str(), text.c_str());
  std::fflush(stderr);
  ::_exit(static_cast<int>(ExitCode::kModel));
}

class ConnectAbortScope {
 public:
  explicit ConnectAbortScope(const std::string& server) {
    server_connecting() = server;
    previous_ = ggml_set_abort_callback(on_connect_abort);
  }
  ~ConnectAbortScope() { ggml_set_abort_callback(previous_); }
  ConnectAbortScope(const ConnectAbortScope&) = delete;
  ConnectAbortScope& operator=(const ConnectAbortScope&) = delete;

 private:
  ggml_abort_callback_t previous_ = nullptr;
};

using AddServerFn = ggml_backend_reg_t (*)(const char* endpoint);

// The RPC backend's entry point, found through the registry as llama.cpp's tools find it (it is a
// loadable backend in some builds).
AddServerFn add_server_function() {
  ggml_backend_reg_t rpc = ggml_backend_reg_by_name("RPC");
  auto fn = rpc ? reinterpret_cast<AddServerFn>(ggml_backend_reg_get_proc_address(rpc, "ggml_backend_rpc_add_server")) : nullptr;
  if (!fn) {
    throw UsageError("--rpc: this drivevqa's engine was built without llama.cpp's RPC backend "
                     "(configure with -DDRIVEVQA_RPC=ON)");
  }
  return fn;
}

const std::vector<ggml_backend_dev_t>& server_devices(const std::string& server) {
  // The engine never frees a server's registration; neither is this entry.
  static std::map<std::string, std::vector<ggml_backend_dev_t>> connected;
  if (auto it = connected.find(server); it != connected.end()) return it->second;
  install_engine_logging();  // the engine's log lines and aborts go through drivevqa's from here on
  const AddServerFn add_server = add_server_function();
  require_reachable(server);
  std::vector<ggml_backend_dev_t> devices;
  {
    ConnectAbortScope scope(server);
    ggml_backend_reg_t reg = add_server(server.c_str());  // connects and asks for its devices
    const size_t count = reg ? ggml_backend_reg_dev_count(reg) : 0;
    if (count == 0) throw ModelError("RPC server " + server + " (--rpc) offers no devices");
    for (size_t i = 0; i < count; ++i) {
      ggml_backend_dev_t dev = ggml_backend_reg_dev_get(reg, i);
      size_t free = 0, total = 0;
      ggml_backend_dev_memory(dev, &free, &total);  // asks the server again
      spdlog::info("RPC server {}: device {}, {} MiB free of {} MiB", server, ggml_backend_dev_name(dev), free >> 20, total >> 20);
      devices.push_back(dev);
    }
  }
  return connected.emplace(server, std::move(devices)).first->second;
}

}  // namespace

std::vector<std::string> parse_rpc_servers(const std::string& list, const std::string& flag) {
  std::vector<std::string> servers;
  std::set<std::string> seen;
  for (size_t at = 0, end = 0; end != std::string::npos; at = end + 1) {
    end = list.find(',', at);
    const std::string entry = list.substr(at, end == std::string::npos ? std::string::npos : end - at);
    const size_t colon = entry.find(':');
    const std::string host = entry.substr(0, colon);
    const std::string port = colon == std::string::npos ? "" : entry.substr(colon + 1);
    const bool host_ok = !host.empty() && host.find_first_of(" \t[]") == std::string::npos;
    const bool port_ok = all_digits(port) && port.size() <= 5 && std::stoi(port) >= 1 && std::stoi(port) <= 65535;
    if (!host_ok || !port_ok) {
      throw UsageError(flag + " '" + entry + "': expected host:port (an IPv4 address or host name, a port 1-65535), "
                       "comma-separated");
    }
    if (!seen.insert(entry).second) throw UsageError(flag + " names " + entry + " twice");
    servers.push_back(entry);
  }
  if (servers.size() > GGML_RPC_MAX_SERVERS) {
    throw UsageError(flag + " names " + std::to_string(servers.size()) + " servers; the engine takes at most " +
                     std::to_string(GGML_RPC_MAX_SERVERS));
  }
  return servers;
}

std::vector<ggml_backend_dev_t> rpc_devices(const std::vector<std::string>& servers) {
  std::vector<ggml_backend_dev_t> devices;
  for (const std::string& server : servers) {
    const auto& of_server = server_devices(server);
    devices.insert(devices.end(), of_server.begin(), of_server.end());
  }
  return devices;
}

ggml_backend_dev_t* text_model_devices(const std::vector<std::string>& servers) {
  static std::map<std::vector<std::string>, std::vector<ggml_backend_dev_t>> lists;
  if (auto it = lists.find(servers); it != lists.end()) return it->second.data();
  std::vector<ggml_backend_dev_t> devices = rpc_devices(servers);
  // This machine's GPUs, as the engine picks them without a list (integrated ones only when no
  // discrete one is present). The registry holds no RPC device (see the header).
  std::vector<ggml_backend_dev_t> gpus, igpus;
  for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
    ggml_backend_dev_t dev = ggml_backend_dev_get(i);
    if (ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_GPU) gpus.push_back(dev);
    if (ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_IGPU) igpus.push_back(dev);
  }
  devices.insert(devices.end(), gpus.begin(), gpus.end());
  if (gpus.empty()) devices.insert(devices.end(), igpus.begin(), igpus.end());
  devices.push_back(nullptr);
  return lists.emplace(servers, std::move(devices)).first->second.data();
}

}  // namespace drivevqa
