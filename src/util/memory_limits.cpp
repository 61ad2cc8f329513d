#include "util/memory_limits.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace drivevqa {
namespace {

std::string read_small_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The number after `key` at the start of a line ("MemAvailable:  123 kB" / "inactive_file 456").
std::optional<uint64_t> keyed_number(std::string_view text, std::string_view key) {
  size_t at = 0;
  while ((at = text.find(key, at)) != std::string_view::npos) {
    const bool line_start = at == 0 || text[at - 1] == '\n';
    const size_t after = at + key.size();
    if (line_start && after < text.size() && (text[after] == ' ' || text[after] == ':' || text[after] == '\t')) {
      uint64_t value = 0;
      if (std::sscanf(std::string(text.substr(after + 1, 32)).c_str(), " %lu", &value) == 1) return value;
      return std::nullopt;
    }
    at = after;
  }
  return std::nullopt;
}

// A cgroup file holding one number, or "max" (no limit).
std::optional<uint64_t> cgroup_number(const std::filesystem::path& file) {
  const std::string text = read_small_file(file);
  uint64_t value = 0;
  if (text.rfind("max", 0) == 0 || std::sscanf(text.c_str(), "%lu", &value) != 1) return std::nullopt;
  return value;
}

// The memory controller's path for this process from /proc/self/cgroup: v2's "0::/path" line, or
// v1's line naming "memory".
std::optional<std::string> own_cgroup(bool v2) {
  std::istringstream lines(read_small_file("/proc/self/cgroup"));
  for (std::string line; std::getline(lines, line);) {
    const size_t first = line.find(':');
    const size_t second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const bool match = v2 ? line.compare(0, first, "0") == 0 && controllers.empty()
                          : ("," + controllers + ",").find(",memory,") != std::string::npos;
    if (match) return line.substr(second + 1);
  }
  return std::nullopt;
}

}  // namespace

std::optional<uint64_t> MemoryHeadroom::least() const {
  std::optional<uint64_t> least;
  for (const auto& left : {address_space, cgroup, ram}) {
    if (left) least = std::min(least.value_or(*left), *left);
  }
  return least;
}

uint64_t mapped_address_space() {
  uint64_t pages = 0;
  if (std::sscanf(read_small_file("/proc/self/statm").c_str(), "%lu", &pages) != 1) return 0;
  return pages * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

std::optional<uint64_t> meminfo_available(std::string_view meminfo) {
  const auto available = keyed_number(meminfo, "MemAvailable");
  if (!available) return std::nullopt;
  return (*available + keyed_number(meminfo, "SwapFree").value_or(0)) * 1024;
}

std::optional<uint64_t> cgroup_headroom(const std::filesystem::path& root, const std::string& relative, bool v2) {
  const char* limit_file = v2 ? "memory.max" : "memory.limit_in_bytes";
  const char* usage_file = v2 ? "memory.current" : "memory.usage_in_bytes";
  const char* inactive_key = v2 ? "inactive_file" : "total_inactive_file";
  // v1 reports "no limit" as a huge page-rounded number rather than "max".
  constexpr uint64_t kNoLimit = uint64_t{1} << 62;
  std::optional<uint64_t> tightest;
  const std::filesystem::path below = std::filesystem::path(relative).lexically_normal().relative_path();
  std::filesystem::path level = below.empty() || below == "." ? root : root / below;
  while (true) {
    std::error_code ec;
    if (std::filesystem::exists(level / limit_file, ec)) {
      const auto limit = cgroup_number(level / limit_file);
      const auto usage = cgroup_number(level / usage_file);
      if (limit && *limit < kNoLimit && usage) {
        const uint64_t inactive = keyed_number(read_small_file(level / "memory.stat"), inactive_key).value_or(0);
        const uint64_t working_set = *usage > inactive ? *usage - inactive : 0;
        const uint64_t left = *limit > working_set ? *limit - working_set : 0;
        tightest = std::min(tightest.value_or(left), left);
      }
    }
    if (level == root || !level.has_parent_path() || level.parent_path() == level) break;
    level = level.parent_path();
    if (level.native().size() < root.native().size()) break;
  }
  return tightest;
}

MemoryHeadroom current_memory_headroom() {
  MemoryHeadroom h;
  rlimit as{};
  if (::getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) {
    const uint64_t used = mapped_address_space();
    h.address_space = as.rlim_cur > used ? as.rlim_cur - used : 0;
  }
  // cgroup v2 at its usual mount, else v1's memory controller.
  if (const auto v2 = own_cgroup(true); v2 && std::filesystem::exists("/sys/fs/cgroup/cgroup.controllers")) {
    h.cgroup = cgroup_headroom("/sys/fs/cgroup", *v2, true);
  } else if (const auto v1 = own_cgroup(false)) {
    const std::filesystem::path root = "/sys/fs/cgroup/memory";
    std::error_code ec;
    // Inside a container the mount is often the process's own group already.
    const auto path = std::filesystem::exists(root / std::filesystem::path(*v1).relative_path(), ec) ? *v1 : "/";
    h.cgroup = cgroup_headroom(root, path, false);
  }
  h.ram = meminfo_available(read_small_file("/proc/meminfo"));
  return h;
}

std::string format_bytes(uint64_t bytes) {
  char text[32];
  const double mib = static_cast<double>(bytes) / (1024.0 * 1024.0);
  if (mib >= 1024.0) {
    std::snprintf(text, sizeof text, "%.1f GiB", mib / 1024.0);
  } else {
    std::snprintf(text, sizeof text, "%.0f MiB", mib);
  }
  return text;
}

}  // namespace drivevqa
