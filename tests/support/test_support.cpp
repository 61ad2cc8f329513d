#include "support/test_support.h"

#include <random>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace drivevqa::test {

std::filesystem::path fixtures_dir() { return DRIVEVQA_FIXTURES_DIR; }
std::filesystem::path tiny_model_dir() { return fixtures_dir() / "tiny"; }

std::unique_ptr<Model> load_tiny_model() {
  EngineOptions engine;
  engine.n_threads = 2;
  return Model::load(find_model_files(tiny_model_dir()), engine);
}
std::filesystem::path demo_dir() { return fixtures_dir() / "demo"; }

void copy_tiny_hf_model(const std::filesystem::path& dest) {
  std::filesystem::create_directories(dest);
  std::filesystem::copy(fixtures_dir() / "tiny-hf", dest, std::filesystem::copy_options::recursive);
}
std::string drivevqa_binary() { return DRIVEVQA_BINARY; }
std::string mtmd_cli_binary() { return DRIVEVQA_MTMD_CLI; }
std::string rpc_server_binary() { return DRIVEVQA_RPC_SERVER; }

std::filesystem::path scratch_dir(const std::string& name) {
  static const std::filesystem::path root = [] {
    std::string templ = (std::filesystem::temp_directory_path() / "drivevqa-test-XXXXXX").string();
    if (!::mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
    static const std::string keep = templ;
    std::atexit([] { std::error_code ec; std::filesystem::remove_all(keep, ec); });
    return std::filesystem::path(templ);
  }();
  const std::filesystem::path dir = root / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

namespace {

pid_t spawn_with_output(const std::vector<std::string>& argv, const std::string& out_path, const std::string& err_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start " + argv[0]);
  return pid;
}

}  // namespace

int spawn_process(const std::vector<std::string>& argv) { return spawn_with_output(argv, "/dev/null", "/dev/null"); }

int spawn_process_with_output(const std::vector<std::string>& argv, const std::string& out_file, const std::string& err_file) {
  return spawn_with_output(argv, out_file, err_file);
}

int free_tcp_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof address;
  const bool bound = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                     ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0;
  if (fd >= 0) ::close(fd);
  if (!bound) throw std::runtime_error("no free TCP port on 127.0.0.1");
  return ntohs(address.sin_port);
}

int wait_process(int pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1 - WTERMSIG(status);
}

ProcessResult run_process(const std::vector<std::string>& argv) {
  const std::filesystem::path dir = scratch_dir("process-io");
  ProcessResult result;
  result.exit_code = wait_process(spawn_with_output(argv, (dir / "out").string(), (dir / "err").string()));
  result.out = read_text(dir / "out");
  result.err = read_text(dir / "err");
  return result;
}

std::vector<std::filesystem::path> first_frame_images() {
  const auto items = nlohmann::json::parse(read_text(demo_dir() / "questions.json"));
  std::vector<std::filesystem::path> paths;
  for (const char* cam : {"CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_RIGHT", "CAM_BACK_LEFT"}) {
    paths.push_back(demo_dir() / items.at(0).at("img_paths").at(cam).get<std::string>());
  }
  return paths;
}

void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

std::vector<std::string> journal_lines(const std::filesystem::path& journal) {
  std::ifstream in(journal);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

std::string images_arg(const std::vector<std::filesystem::path>& paths) {
  std::string csv;
  for (const auto& p : paths) csv += (csv.empty() ? "" : ",") + p.string();
  return csv;
}

std::vector<std::string> cached_ask_args(const std::filesystem::path& model, const std::filesystem::path& cache,
                                         const std::vector<std::string>& extra) {
  std::vector<std::string> args = {drivevqa_binary(), "ask", "--model", model.string(), "--cache_dir", cache.string(),
                                   "--outtype", "f32", "--images", images_arg(first_frame_images()), "-t", "1",
                                   "--max_new_tokens", "4", "--image_max_tokens", "16"};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back("What is ahead?");
  return args;
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

RgbImage dark_noise_image(int width, int height, uint32_t seed) {
  RgbImage image{width, height, {}};
  image.pixels.resize(image.byte_size());
  std::mt19937 rng(seed);
  for (uint8_t& v : image.pixels) v = static_cast<uint8_t>(rng() % 120);
  return image;
}

void patch_safetensors_f32(const std::filesystem::path& file, const std::string& tensor, size_t index, float value) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  uint64_t header_len = 0;
  f.read(reinterpret_cast<char*>(&header_len), 8);
  std::string header(header_len, '\0');
  f.read(header.data(), static_cast<std::streamsize>(header_len));
  const auto j = nlohmann::json::parse(header);
  if (j.at(tensor).at("dtype") != "F32") throw std::runtime_error(tensor + " is not F32");
  const uint64_t begin = j.at(tensor).at("data_offsets")[0].get<uint64_t>();
  f.seekp(static_cast<std::streamoff>(8 + header_len + begin + index * 4));
  f.write(reinterpret_cast<const char*>(&value), 4);
  if (!f.good()) throw std::runtime_error(file.string() + ": write failed");
}

}  // namespace drivevqa::test
