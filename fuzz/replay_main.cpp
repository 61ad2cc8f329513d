// A main for fuzz targets built without libFuzzer: runs the target over seed inputs (files, or
// folders of files) and over seeded random mutations of them. The test suite's smoke run.
//   fuzz_<target> [--mutations N] [--seed S] PATH...
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "fuzz/fuzz_target.h"

namespace {

std::vector<uint8_t> read_all(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// One random edit of the kinds a coverage-guided fuzzer starts with.
void mutate(std::vector<uint8_t>& data, const std::vector<std::vector<uint8_t>>& seeds, std::mt19937& rng) {
  const auto pick = [&](size_t n) { return n == 0 ? size_t{0} : std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  switch (pick(6)) {
    case 0:  // flip bits
      for (size_t k = 0, n = 1 + pick(8); k < n && !data.empty(); ++k) data[pick(data.size())] ^= static_cast<uint8_t>(1u << pick(8));
      break;
    case 1:  // truncate
      data.resize(pick(data.size() + 1));
      break;
    case 2:  // insert random bytes
      for (size_t k = 0, n = 1 + pick(16); k < n; ++k) {
        data.insert(data.begin() + static_cast<std::ptrdiff_t>(pick(data.size() + 1)), static_cast<uint8_t>(pick(256)));
      }
      break;
    case 3: {  // duplicate a chunk
      if (data.empty()) break;
      const size_t from = pick(data.size()), len = 1 + pick(std::min<size_t>(64, data.size() - from));
      const std::vector<uint8_t> chunk(data.begin() + static_cast<std::ptrdiff_t>(from), data.begin() + static_cast<std::ptrdiff_t>(from + len));
      data.insert(data.begin() + static_cast<std::ptrdiff_t>(pick(data.size() + 1)), chunk.begin(), chunk.end());
      break;
    }
    case 4: {  // splice with another seed
      const auto& other = seeds[pick(seeds.size())];
      const size_t cut = pick(data.size() + 1), from = pick(other.size() + 1);
      data.resize(cut);
      data.insert(data.end(), other.begin() + static_cast<std::ptrdiff_t>(from), other.end());
      break;
    }
    default:  // interesting values
      if (!data.empty()) {
        static const uint8_t kValues[] = {0x00, 0xFF, 0x7F, 0x80, '"', '{', '[', ']', '}', ':', ',', '\\', '9'};
        data[pick(data.size())] = kValues[pick(sizeof kValues)];
      }
  }
}

}  // namespace

int main(int argc, char** argv) {
  size_t mutations = 0;
  unsigned seed = 1;
  std::vector<std::filesystem::path> paths;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--mutations" && i + 1 < argc) {
      mutations = std::strtoul(argv[++i], nullptr, 10);
    } else if (a == "--seed" && i + 1 < argc) {
      seed = static_cast<unsigned>(std::strtoul(argv[++i], nullptr, 10));
    } else if (std::filesystem::is_directory(a)) {
      for (const auto& e : std::filesystem::directory_iterator(a)) paths.push_back(e.path());
    } else {
      paths.emplace_back(a);
    }
  }
  std::sort(paths.begin(), paths.end());
  std::vector<std::vector<uint8_t>> seeds;
  for (const auto& p : paths) seeds.push_back(read_all(p));
  if (seeds.empty()) {
    std::fprintf(stderr, "no seed inputs given\n");
    return 2;
  }
  std::mt19937 rng(seed);
  size_t runs = 0;
  for (const auto& s : seeds) {
    LLVMFuzzerTestOneInput(s.data(), s.size());
    ++runs;
    std::vector<uint8_t> data = s;
    for (size_t m = 0; m < mutations; ++m) {
      if (m % 16 == 0) data = s;  // chains of edits, restarted from the seed now and then
      mutate(data, seeds, rng);
      LLVMFuzzerTestOneInput(data.data(), data.size());
      ++runs;
    }
  }
  std::printf("%zu inputs (%zu seeds, seed %u): no crash\n", runs, seeds.size(), seed);
  return 0;
}
