// How much more memory this process may take, from each limit that applies to it.
//
// Three limits end a process that passes them, each differently: the address-space limit
// (`ulimit -v`, RLIMIT_AS) makes allocations fail, and the engine then aborts or crashes; a memory
// cgroup's limit and the machine's RAM bring the kernel's OOM killer (SIGKILL). Each is read as
// headroom: the limit minus what is used now. A limit that is not set, or cannot be read, is absent.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace drivevqa {

struct MemoryHeadroom {
  // RLIMIT_AS minus the address space mapped now: everything counts, mapped files included.
  std::optional<uint64_t> address_space;
  // The tightest memory cgroup on the way up from this process, minus its working set (usage
  // less inactive file pages, which the kernel reclaims before it kills).
  std::optional<uint64_t> cgroup;
  // MemAvailable + SwapFree from /proc/meminfo.
  std::optional<uint64_t> ram;

  // The smallest of the limits that apply; nullopt when none does.
  std::optional<uint64_t> least() const;
};

MemoryHeadroom current_memory_headroom();

// Address space mapped by this process now (/proc/self/statm), in bytes; 0 when unreadable.
uint64_t mapped_address_space();

// MemAvailable + SwapFree in the text of /proc/meminfo; nullopt when MemAvailable is missing.
std::optional<uint64_t> meminfo_available(std::string_view meminfo);

// Headroom of the memory cgroup `relative` (a path as /proc/self/cgroup gives it) under the
// controller's mount `root`, taking the tightest of it and its parents up to `root`. `v2` selects
// the file names (memory.max / memory.current / inactive_file, or v1's memory.limit_in_bytes /
// memory.usage_in_bytes / total_inactive_file). nullopt when no level sets a limit.
std::optional<uint64_t> cgroup_headroom(const std::filesystem::path& root, const std::string& relative, bool v2);

// "1.5 GiB", "730 MiB": sizes in messages.
std::string format_bytes(uint64_t bytes);

}  // namespace drivevqa
