// Reads that could block: special files refused by type, size caps, files that have no data yet,
// and a real `drivevqa run` stopped by SIGTERM while it waits for an image. Blocking is made for
// real: a file lease held by the test (open waits), and, as root, a FUSE file served by this
// process whose read never answers (a read blocked inside the kernel).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "engine/image.h"
#include "support/test_support.h"
#include "util/error.h"
#include "util/files.h"

extern char** environ;

namespace drivevqa {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

// The InputError message of reading `path`, or "" when it reads.
std::string read_error(const std::filesystem::path& path, const ReadLimits& limits = {}) {
  try {
    read_file_bytes(path, limits);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

TEST(BlockingRead, SpecialFilesAreRefusedAtOnceByWhatTheyAre) {
  const auto dir = test::scratch_dir("special-files");
  EXPECT_EQ(read_error(dir), dir.string() + ": is a folder, not a regular file");
  EXPECT_EQ(read_error("/dev/null"), "/dev/null: is a device, not a regular file");
  EXPECT_EQ(read_error(dir / "missing.jpg"), (dir / "missing.jpg").string() + ": not found");
  EXPECT_EQ(read_error(dir / "missing" / "x.jpg"), (dir / "missing" / "x.jpg").string() + ": not found");
  const auto socket_path = dir / "camera.sock";
  const int sock = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socket_path.c_str(), sizeof address.sun_path - 1);
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  EXPECT_EQ(read_error(socket_path), socket_path.string() + ": is a socket, not a regular file");
  ::close(sock);
  const auto fifo = dir / "CAM_FRONT.jpg";  // nobody writes to it: a blocking open would never return
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  const auto t0 = Clock::now();
  EXPECT_EQ(read_error(fifo), fifo.string() + ": is a FIFO (named pipe), not a regular file");
  EXPECT_LT(seconds_since(t0), 1.0);
}

TEST(BlockingRead, AnUnreadableFileIsPermissionDeniedNotNotFound) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads any file";
  const auto file = test::scratch_dir("unreadable") / "CAM_FRONT.jpg";
  test::write_bytes(file, "jpeg");
  ASSERT_EQ(::chmod(file.c_str(), 0), 0);
  EXPECT_EQ(read_error(file), file.string() + ": permission denied");
}

TEST(BlockingRead, AFileOverTheCapIsRefusedBeforeAByteIsReadOrOnceItGrowsPastIt) {
  const auto dir = test::scratch_dir("cap");
  const auto huge = dir / "huge.jpg";
  {
    const int fd = ::open(huge.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, off_t{1} << 30), 0);  // 1 GB, sparse: reading it would take seconds
    ::close(fd);
  }
  const auto t0 = Clock::now();
  EXPECT_EQ(read_error(huge, {.max_bytes = 64u << 20}),
            huge.string() + ": is 1073741824 bytes, more than the limit of 67108864 bytes");
  try {
    load_image_file(huge);
    ADD_FAILURE() << "a 1 GB image file was read";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("more than the limit of " + std::to_string(kMaxImageFileBytes) + " bytes"),
              std::string::npos) << e.what();
  }
  EXPECT_LT(seconds_since(t0), 0.2);

  const auto ten = dir / "ten";
  test::write_bytes(ten, "0123456789");
  EXPECT_EQ(read_file_bytes(ten, {.max_bytes = 10}).size(), 10u);
  EXPECT_EQ(read_error(ten, {.max_bytes = 9}), ten.string() + ": is 10 bytes, more than the limit of 9 bytes");
  // procfs files are regular files of size 0 with content: read to their end, still capped.
  const std::string status = read_text_file("/proc/self/status");
  EXPECT_NE(status.find("Name:"), std::string::npos);
  EXPECT_EQ(read_error("/proc/self/status", {.max_bytes = 64}),
            "/proc/self/status: more than the limit of 64 bytes (it grew while it was read)");
}

// A write lease held by this process: another open of the file fails with EWOULDBLOCK (with
// O_NONBLOCK; without, it waits) until the lease is given up.
struct Lease {
  int fd = -1;
  explicit Lease(const std::filesystem::path& path) {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && ::fcntl(fd, F_SETLEASE, F_WRLCK) != 0) release();
  }
  ~Lease() { release(); }
  bool held() const { return fd >= 0; }
  // True once someone has tried to open the file: the kernel asks us to give the lease up.
  bool asked_to_break() const { return fd >= 0 && ::fcntl(fd, F_GETLEASE) != F_WRLCK; }
  void release() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

// The lease holder is told of a break by SIGIO, which would end the test process.
struct IgnoreSigio {
  void (*previous)(int) = ::signal(SIGIO, SIG_IGN);
  ~IgnoreSigio() { ::signal(SIGIO, previous); }
};

TEST(BlockingRead, AFileUnderALeaseIsReadOnceTheLeaseIsGivenUpAndRefusedAfterTheTimeout) {
  const IgnoreSigio ignore;
  const auto file = test::scratch_dir("lease") / "CAM_FRONT.jpg";
  test::write_bytes(file, "jpeg bytes");
  {
    Lease lease(file);
    if (!lease.held()) GTEST_SKIP() << "file leases are not available here";
    const auto t0 = Clock::now();
    EXPECT_EQ(read_error(file, {.no_data_timeout = 300ms}),
              file.string() + ": cannot open it for 300 ms: another program holds a lease on it");
    EXPECT_GE(seconds_since(t0), 0.3);
    EXPECT_LT(seconds_since(t0), 1.0);
  }
  Lease lease(file);
  ASSERT_TRUE(lease.held());
  std::thread give_up([&] {
    while (!lease.asked_to_break()) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(200ms);
    lease.release();
  });
  const auto t0 = Clock::now();
  const std::vector<uint8_t> bytes = read_file_bytes(file);
  give_up.join();
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), "jpeg bytes");
  EXPECT_GE(seconds_since(t0), 0.2);
}

// A FUSE file system of one regular file, image.jpg, served by this process over /dev/fuse. Its
// reads never answer until the kernel passes on an interrupt (kHang) or always say "try again"
// (kTryAgain). It is mounted only in a private mount namespace, which goes with its thread or process.
class OneFileFuse {
 public:
  enum class Mode { kHang, kTryAgain };
  explicit OneFileFuse(Mode mode) : mode_(mode), fd_(::open("/dev/fuse", O_RDWR | O_CLOEXEC)) {
    if (fd_ >= 0) server_ = std::thread([this] { serve(); });
  }
  ~OneFileFuse() {
    stop_ = true;
    if (server_.joinable()) server_.join();
    if (fd_ >= 0) ::close(fd_);
  }
  bool opened() const { return fd_ >= 0; }
  std::string mount_options() const {
    return "fd=" + std::to_string(fd_) + ",rootmode=40000,user_id=" + std::to_string(::geteuid()) +
           ",group_id=" + std::to_string(::getegid());
  }
  // Only system calls: safe in a child between fork and exec. Returns 0 or errno.
  static int mount_privately(const char* mountpoint, const char* options) {
    if (::unshare(CLONE_NEWNS) != 0 || ::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("drivevqa-test", mountpoint, "fuse.drivevqa-test", MS_NOSUID | MS_NODEV, options) != 0) {
      return errno;
    }
    return 0;
  }
  int reader_tid() const { return reader_tid_; }  // the thread that asked for the first read
  int reads() const { return reads_; }

 private:
  static constexpr uint64_t kFileNode = 2;

  void reply(uint64_t unique, int error, const void* body = nullptr, size_t size = 0) {
    fuse_out_header out{static_cast<uint32_t>(sizeof(fuse_out_header) + (error ? 0 : size)), -error, unique};
    iovec parts[2] = {{&out, sizeof out}, {const_cast<void*>(body), error ? 0 : size}};
    [[maybe_unused]] const ssize_t n = ::writev(fd_, parts, 2);
  }
  static fuse_attr attributes(uint64_t node) {
    const bool file = node == kFileNode;
    return {.ino = node, .size = file ? 4096u : 0u, .mode = file ? S_IFREG | 0644u : S_IFDIR | 0755u,
            .nlink = file ? 1u : 2u, .uid = ::geteuid(), .gid = ::getegid()};
  }
  void answer(const fuse_in_header& in, const char* body) {
    switch (in.opcode) {
      case FUSE_INIT: {
        const fuse_init_out out{.major = FUSE_KERNEL_VERSION, .minor = FUSE_KERNEL_MINOR_VERSION,
                                .max_readahead = reinterpret_cast<const fuse_init_in*>(body)->max_readahead, .max_write = 4096};
        return reply(in.unique, 0, &out, sizeof out);
      }
      case FUSE_LOOKUP: {
        if (std::strcmp(body, "image.jpg") != 0) return reply(in.unique, ENOENT);
        const fuse_entry_out out{.nodeid = kFileNode, .attr = attributes(kFileNode)};
        return reply(in.unique, 0, &out, sizeof out);
      }
      case FUSE_GETATTR: {
        const fuse_attr_out out{.attr = attributes(in.nodeid)};
        return reply(in.unique, 0, &out, sizeof out);
      }
      case FUSE_OPEN: {
        const fuse_open_out out{.open_flags = FOPEN_DIRECT_IO};  // every read reaches this server
        return reply(in.unique, 0, &out, sizeof out);
      }
      case FUSE_READ:
        if (reads_ == 0) reader_tid_ = static_cast<int>(in.pid);
        ++reads_;
        if (mode_ == Mode::kTryAgain) return reply(in.unique, EAGAIN);
        hung_.insert(in.unique);
        return;
      case FUSE_INTERRUPT:  // the reader got a signal: its read ends with EINTR
        if (hung_.erase(reinterpret_cast<const fuse_interrupt_in*>(body)->unique)) {
          reply(reinterpret_cast<const fuse_interrupt_in*>(body)->unique, EINTR);
        }
        return;
      case FUSE_FORGET:
      case FUSE_BATCH_FORGET: return;  // never answered
      case FUSE_FLUSH:
      case FUSE_RELEASE: return reply(in.unique, 0);
      default: return reply(in.unique, ENOSYS);
    }
  }
  void serve() {
    std::vector<char> buffer(1 << 18);
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const ssize_t n = ::read(fd_, buffer.data(), buffer.size());
      if (n < 0 && errno == ENODEV) return;  // unmounted
      if (n < static_cast<ssize_t>(sizeof(fuse_in_header))) continue;
      answer(*reinterpret_cast<const fuse_in_header*>(buffer.data()), buffer.data() + sizeof(fuse_in_header));
    }
  }

  Mode mode_;
  int fd_;
  std::atomic<bool> stop_{false};
  std::atomic<int> reads_{0};
  std::atomic<int> reader_tid_{0};
  std::set<uint64_t> hung_;  // server thread only
  std::thread server_;
};

TEST(BlockingRead, AFileThatAlwaysSaysTryAgainIsRefusedAfterTheTimeoutWithoutSpinning) {
  const auto mountpoint = test::scratch_dir("fuse-try-again");
  OneFileFuse fuse(OneFileFuse::Mode::kTryAgain);
  std::string error;
  double seconds = 0;
  int mount_error = ENODEV;
  std::thread reader([&] {  // the mount exists in this thread's namespace only, and ends with it
    if (!fuse.opened() || (mount_error = OneFileFuse::mount_privately(mountpoint.c_str(), fuse.mount_options().c_str())) != 0) return;
    const auto t0 = Clock::now();
    error = read_error(mountpoint / "image.jpg", {.no_data_timeout = 300ms});
    seconds = seconds_since(t0);
  });
  reader.join();
  if (mount_error != 0) GTEST_SKIP() << "cannot mount FUSE here (needs root and /dev/fuse): " << std::strerror(mount_error);
  EXPECT_EQ(error, (mountpoint / "image.jpg").string() + ": no data for 300 ms (a special file that blocks?)");
  EXPECT_GE(seconds, 0.3);
  EXPECT_LT(seconds, 1.0);
  EXPECT_GE(fuse.reads(), 2);   // asked again after waiting
  EXPECT_LE(fuse.reads(), 40);  // at most one read per 10 ms: no busy loop
}

// --- A real run of the tiny model on the demo data, one image of a later frame replaced. ---

struct Frames {
  Json items;
  std::vector<size_t> frame_of;  // per item: frames numbered in order of first appearance
  size_t items_before(size_t frame) const {
    return static_cast<size_t>(std::count_if(frame_of.begin(), frame_of.end(), [&](size_t f) { return f < frame; }));
  }
};

Frames demo_frames() {
  Frames frames{Json::parse(test::read_text(test::demo_dir() / "questions.json")), {}};
  std::vector<std::string> seen;
  for (const Json& item : frames.items) {
    const std::string key = item.at("img_paths").dump();
    auto it = std::find(seen.begin(), seen.end(), key);
    if (it == seen.end()) it = seen.insert(seen.end(), key);
    frames.frame_of.push_back(static_cast<size_t>(it - seen.begin()));
  }
  return frames;
}

// Points the CAM_FRONT image of `frame` at `image`, made a copy of the original unless told not to.
void replace_front_image(Frames& frames, size_t frame, const std::filesystem::path& image, bool copy = true) {
  for (size_t i = 0; i < frames.items.size(); ++i) {
    if (frames.frame_of[i] != frame) continue;
    Json& path = frames.items[i]["img_paths"]["CAM_FRONT"];
    if (copy && !std::filesystem::exists(image)) std::filesystem::copy_file(test::demo_dir() / path.get<std::string>(), image);
    path = image.string();
  }
}

std::vector<std::string> run_args(const std::filesystem::path& questions, const std::filesystem::path& out) {
  return {test::drivevqa_binary(), "run", "--json_file", questions.string(), "--image_base_dir", test::demo_dir().string(),
          "--output_file", out.string(), "--model_7b", test::tiny_model_dir().string(), "--dtype", "fp16",
          "--image_max_tokens", "32", "--max_new_tokens_cap", "6", "--limit", "0", "-t", "2"};
}

constexpr int kCannotMount = 97;

// Starts `argv` with stderr to `err`; with `fuse_options`, in a private mount namespace where the
// FUSE file system is mounted at `mountpoint`.
int start(const std::vector<std::string>& argv, const std::filesystem::path& err, const std::string& fuse_options = "",
          const std::filesystem::path& mountpoint = {}) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  const int err_fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int null_fd = ::open("/dev/null", O_RDWR);
  ::dup2(null_fd, 0);
  ::dup2(null_fd, 1);
  ::dup2(err_fd, 2);
  if (!fuse_options.empty() && OneFileFuse::mount_privately(mountpoint.c_str(), fuse_options.c_str()) != 0) ::_exit(kCannotMount);
  ::execve(args[0], args.data(), environ);
  ::_exit(98);
}

// Waits until `ready()`; false when the process `pid` ended first or a minute has passed.
bool wait_while_running(int pid, const std::function<bool()>& ready) {
  const auto deadline = Clock::now() + 60s;
  while (!ready()) {
    siginfo_t info{};
    const bool ended = ::waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid;
    if (ended || Clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// A started process, killed if the test ends before it has been waited for.
struct Child {
  int pid = -1;
  ~Child() { if (pid > 0 && ::kill(pid, SIGKILL) == 0) ::waitpid(pid, nullptr, 0); }
  // The exit code, or nullopt (and the process killed) when it has not ended by the deadline.
  std::optional<int> exit_code_by(Clock::time_point deadline) {
    int status = 0;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) return std::nullopt;
      std::this_thread::sleep_for(2ms);
    }
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1 - WTERMSIG(status);
  }
};

// Journal lines after the header, each parsed; their item indices, each once.
std::set<size_t> journaled_items(const std::filesystem::path& journal) {
  const auto lines = test::journal_lines(journal);
  std::set<size_t> indices;
  for (size_t i = 1; i < lines.size(); ++i)
    EXPECT_TRUE(indices.insert(Json::parse(lines[i]).at("index").get<size_t>()).second) << "journaled twice: " << lines[i];
  return indices;
}

constexpr size_t kWaitFrame = 3;  // the first frame after three answered ones

TEST(BlockingRead, AnImageSwappedForAFifoDuringARunCostsOnlyThatImage) {
  const IgnoreSigio ignore;
  const auto dir = test::scratch_dir("run-fifo");
  Frames frames = demo_frames();
  const size_t last_frame = frames.frame_of.back();
  replace_front_image(frames, kWaitFrame, dir / "gate.jpg");
  replace_front_image(frames, last_frame, dir / "later.jpg");
  test::write_bytes(dir / "questions.json", frames.items.dump());
  // The run waits at the gate (a lease) while the later image becomes a FIFO after the run's checks.
  Lease gate(dir / "gate.jpg");
  if (!gate.held()) GTEST_SKIP() << "file leases are not available here";
  Child run{start(run_args(dir / "questions.json", dir / "out.json"), dir / "err.txt")};
  ASSERT_TRUE(wait_while_running(run.pid, [&] { return gate.asked_to_break(); })) << test::read_text(dir / "err.txt");
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0644), 0);
  std::filesystem::rename(dir / "fifo", dir / "later.jpg");
  gate.release();
  ASSERT_EQ(run.exit_code_by(Clock::now() + 60s), 0) << test::read_text(dir / "err.txt");
  const std::string err = test::read_text(dir / "err.txt");
  EXPECT_NE(err.find((dir / "later.jpg").string() + ": is a FIFO (named pipe), not a regular file"), std::string::npos) << err;
  const Json results = Json::parse(test::read_text(dir / "out.json"));
  ASSERT_EQ(results.size(), frames.items.size());
  for (size_t i = 0; i < results.size(); ++i) {  // the later frame's items: answered with their other five images
    if (frames.frame_of[i] == last_frame) EXPECT_NE(results[i].at("model_used").get<std::string>(), "none") << results[i].dump();
  }
}

TEST(BlockingRead, SigtermWhileARunWaitsForAnImageStopsItWithin2sAndTheRunResumes) {
  const IgnoreSigio ignore;
  const auto dir = test::scratch_dir("run-lease");
  Frames frames = demo_frames();
  replace_front_image(frames, kWaitFrame, dir / "leased.jpg");
  test::write_bytes(dir / "questions.json", frames.items.dump());
  const auto out = dir / "out.json";
  const auto journal = dir / "out.json.journal";
  {
    Lease lease(dir / "leased.jpg");
    if (!lease.held()) GTEST_SKIP() << "file leases are not available here";
    Child run{start(run_args(dir / "questions.json", out), dir / "err.txt")};
    ASSERT_TRUE(wait_while_running(run.pid, [&] { return lease.asked_to_break(); })) << test::read_text(dir / "err.txt");
    std::this_thread::sleep_for(200ms);  // waiting for the image now
    ::kill(run.pid, SIGTERM);
    ASSERT_EQ(run.exit_code_by(Clock::now() + 2s), 130) << test::read_text(dir / "err.txt");
  }
  const std::set<size_t> answered = journaled_items(journal);
  EXPECT_EQ(answered.size(), frames.items_before(kWaitFrame));  // every frame before the waiting one
  EXPECT_EQ(Json::parse(test::read_text(out)).size(), answered.size());  // the results file: what was answered

  const auto again = test::run_process(run_args(dir / "questions.json", out));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find(std::to_string(answered.size()) + " answers already in"), std::string::npos) << again.err;
  EXPECT_EQ(journaled_items(journal).size(), frames.items.size());
  EXPECT_EQ(Json::parse(test::read_text(out)).size(), frames.items.size());
}

TEST(BlockingRead, SigtermWhileTheQuestionFileWaitsEndsTheRunWithOneLine) {
  const IgnoreSigio ignore;
  const auto dir = test::scratch_dir("run-lease-questions");
  std::filesystem::copy_file(test::demo_dir() / "questions.json", dir / "questions.json");
  Lease lease(dir / "questions.json");
  if (!lease.held()) GTEST_SKIP() << "file leases are not available here";
  Child run{start(run_args(dir / "questions.json", dir / "out.json"), dir / "err.txt")};
  ASSERT_TRUE(wait_while_running(run.pid, [&] { return lease.asked_to_break(); })) << test::read_text(dir / "err.txt");
  ::kill(run.pid, SIGTERM);  // the handlers are installed before any input is read
  ASSERT_EQ(run.exit_code_by(Clock::now() + 2s), 130) << test::read_text(dir / "err.txt");
  EXPECT_EQ(test::read_text(dir / "err.txt"), "drivevqa: error: interrupted\n");
  EXPECT_FALSE(std::filesystem::exists(dir / "out.json.journal"));
}

// A thread of `pid` other than `except` that takes SIGTERM (not the helper that blocks all signals).
std::optional<int> other_thread(int pid, int except) {
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    const int tid = std::stoi(task.path().filename().string());
    if (tid == except) continue;
    std::ifstream status(task.path() / "status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("SigBlk:", 0) == 0 && (std::stoull(line.substr(7), nullptr, 16) & (1ull << (SIGTERM - 1))) == 0) {
        return tid;
      }
    }
  }
  return std::nullopt;
}

TEST(BlockingRead, SigtermOnAnotherThreadEndsAReadBlockedInTheKernel) {
  const auto dir = test::scratch_dir("run-fuse");
  const auto mountpoint = test::scratch_dir("run-fuse-mnt");
  OneFileFuse fuse(OneFileFuse::Mode::kHang);
  if (!fuse.opened()) GTEST_SKIP() << "cannot open /dev/fuse";
  Frames frames = demo_frames();
  replace_front_image(frames, kWaitFrame, mountpoint / "image.jpg", false);
  test::write_bytes(dir / "questions.json", frames.items.dump());
  const auto out = dir / "out.json";
  Child run{start(run_args(dir / "questions.json", out), dir / "err.txt", fuse.mount_options(), mountpoint)};
  if (!wait_while_running(run.pid, [&] { return fuse.reads() > 0; })) {
    if (run.exit_code_by(Clock::now()) == kCannotMount) GTEST_SKIP() << "cannot mount FUSE here (needs root)";
    FAIL() << "no read arrived: " << test::read_text(dir / "err.txt");
  }
  std::this_thread::sleep_for(200ms);  // inside read() now, waiting for the server
  // Sent to another thread, the signal leaves the reader blocked: only the helper's nudge frees it.
  const std::optional<int> target = other_thread(run.pid, fuse.reader_tid());
  ASSERT_TRUE(target) << "the run has no engine thread";
  ::syscall(SYS_tgkill, run.pid, *target, SIGTERM);
  ASSERT_EQ(run.exit_code_by(Clock::now() + 2s), 130) << test::read_text(dir / "err.txt");
  const std::set<size_t> answered = journaled_items(dir / "out.json.journal");
  EXPECT_EQ(answered.size(), frames.items_before(kWaitFrame));
  EXPECT_EQ(Json::parse(test::read_text(out)).size(), answered.size());  // the results file: what was answered
}

}  // namespace
}  // namespace drivevqa
