// The embedded demo: a small Track 1 data set in the converted format, drawn by the program.
//
// Layout under the output folder:
//   questions.json                      the converted question list (track1.md §1)
//   samples/<CAM>/<scene>_<frame>.jpg   six 1600x900 camera images per frame
// Objects named by the questions (<cN,CAM,x,y>) are drawn at those pixel positions. The list ends
// broken items after the first frame (a missing camera image, an item whose images are all missing,
// an item without a question) so that per-item error handling is exercised by the demo itself.
#pragma once

#include <filesystem>

namespace drivevqa {

struct DemoSummary {
  int scenes = 0;
  int frames = 0;
  int images = 0;
  int questions = 0;      // items in questions.json, broken ones included
  int broken_items = 0;       // planted problems
  int unanswerable_items = 0;  // of those, items that must get an error answer
  std::filesystem::path questions_file;
};

// kDemo: the demo above. kBenchmark: the same four frames with 20 questions each and no broken
// items, a Track-1-shaped workload for bench/throughput.sh.
enum class DemoVariant { kDemo, kBenchmark };

// Same output for every call (fixed content, deterministic drawing and encoding).
DemoSummary write_demo_dataset(const std::filesystem::path& dir, DemoVariant variant = DemoVariant::kDemo);

}  // namespace drivevqa
